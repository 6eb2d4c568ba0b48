package fleet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// ErrInvalidConfig wraps every error in a fleet configuration.
var ErrInvalidConfig = errors.New("invalid fleet config")

// Config says which workers to build.
type Config struct {
	Conn    *nats.Conn
	Logger  zerolog.Logger
	Version string
	// Spec is the pipeline. Required.
	Spec *pipeline.Spec
	// Datasets limits the fleet to these datasets; empty means all.
	Datasets []string
	// Steps to run; empty means every step of the pipeline.
	Steps []string
	// Replicas per step name; default 1.
	Replicas map[string]int
	// LoadLookups writes the spec's lookup tables into their KV buckets at
	// Prepare (dev mode); in production `jetfleet lookup load` does it.
	LoadLookups bool
	// QuietStart logs each worker's start at debug (workers.Config).
	QuietStart bool
	// HeartbeatInterval is every worker's (workers.Config); default 5s.
	HeartbeatInterval time.Duration
	// Consumer and Streams tune every worker.
	Consumer subjects.ConsumerOptions
	Streams  subjects.StreamOptions
	// DataDir holds the aggregators' DuckDB state, marts and lake.
	// Default .jetfleet.
	DataDir string
	// MemoryLimit is each aggregator replica's DuckDB memory limit,
	// divided between its mart builder (half) and its partitions' states.
	// Default 1GB.
	MemoryLimit string
	// AggregatePartitions is the set of clean-stage partitions ("0-3,6")
	// this process's aggregators own; empty means all of them. Ignored when
	// AggregateClaim is set.
	AggregatePartitions string
	// AggregateClaim makes aggregators claim a fair share of partitions
	// through leases instead (docs/scale-out.md), so replicas in several
	// processes divide them and take over a dead one's.
	AggregateClaim bool
	// LeaseTTL is how long a claimed partition stays with a replica that
	// stopped renewing. Default 10s.
	LeaseTTL time.Duration
	// WebhookBackoffMin is the first retry delay of a failed webhook POST
	// (doubling per attempt). Default: the workers' default.
	WebhookBackoffMin time.Duration
	// AggregateCommittedFunc is passed to every aggregator's intake as
	// aggregate.IntakeConfig.CommittedFunc.
	AggregateCommittedFunc func(batch []workers.Record)
}

// Member is one supervised part of the fleet.
type Member struct {
	Name string // step/dataset#replica
	// Worker is set for step workers (nil for helper services).
	Worker *workers.Worker
	// RunFunc runs the member until ctx is cancelled.
	RunFunc func(ctx context.Context) error
}

// Run runs the member until ctx is cancelled.
func (m Member) Run(ctx context.Context) error {
	if m.RunFunc != nil {
		return m.RunFunc(ctx)
	}
	return m.Worker.Run(ctx)
}

// Fleet is the set of members built from a pipeline.
type Fleet struct {
	cfg     Config
	Members []Member
	tables  *transform.KVTables
	sets    []*partitionSet
	// lookups are the lookup tables the fleet's transforms read; ingest
	// says whether it watches the landing bucket.
	lookups []string
	ingest  bool
}

// AggregateMemory is what the fleet's aggregators hold beside the Go
// heap: what DuckDB accounts for in their engines (duckdb_memory()), and
// their key sets. With the process's resident memory and the Go
// runtime's, it tells where memory goes.
func (f *Fleet) AggregateMemory(ctx context.Context) (duckdb, keys int64) {
	for _, s := range f.sets {
		s.mu.Lock()
		eng, in := s.engine, s.intake
		s.mu.Unlock()
		if eng != nil {
			if n, err := eng.Memory(ctx); err == nil {
				duckdb += n
			}
		}
		if in != nil {
			keys += in.Stats().KeyBytes
		}
	}
	return duckdb, keys
}

// AlertsPending counts the mart rule evaluations not yet published as
// alerts: after the marts are written, their alerts follow.
func (f *Fleet) AlertsPending() int {
	n := 0
	for _, s := range f.sets {
		if s.rules != nil {
			n += s.rules.Pending()
		}
	}
	return n
}

// DataDir is the data dir the fleet's aggregators use.
func (f *Fleet) DataDir() string { return f.cfg.DataDir }

// StepNames lists the steps a fleet of spec runs, in pipeline order:
// ingest, validate, transform and aggregate, and alert when the pipeline
// has alert rules (a nil spec has none). The slice is the caller's.
func StepNames(spec *pipeline.Spec) []string {
	names := []string{subjects.StepIngest.Name, subjects.StepValidate.Name, subjects.StepTransform.Name, subjects.StepAggregate.Name}
	if spec != nil && len(spec.Alerts) > 0 {
		names = append(names, subjects.StepAlert.Name)
	}
	return names
}

// Build creates the workers. It does no I/O: call Prepare before running
// them, so lookup tables are in memory before the first transform.
func Build(cfg Config) (*Fleet, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	if cfg.Spec == nil {
		return nil, fmt.Errorf("%w: no pipeline", ErrInvalidConfig)
	}
	steps := StepNames(cfg.Spec)
	for _, s := range cfg.Steps {
		if !slices.Contains(steps, s) {
			return nil, fmt.Errorf("%w: unknown step %q (steps: %s)", ErrInvalidConfig, s, strings.Join(steps, ", "))
		}
	}
	if cfg.DataDir == "" {
		cfg.DataDir = ".jetfleet"
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	// Transform and aggregate depend on the partition count: their
	// processes must agree with JF_CLEAN's exactly.
	cfg.Streams.Partitions = cfg.Streams.PartitionCount()
	datasets := cfg.Spec.Datasets
	if len(cfg.Datasets) > 0 {
		datasets = nil
		for _, name := range cfg.Datasets {
			ds := cfg.Spec.Dataset(name)
			if ds == nil {
				return nil, fmt.Errorf("%w: dataset %q is not in pipeline %s", ErrInvalidConfig, name, cfg.Spec.Name)
			}
			datasets = append(datasets, ds)
		}
	}
	f := &Fleet{cfg: cfg}
	runs := func(step string) bool { return len(cfg.Steps) == 0 || slices.Contains(cfg.Steps, step) }

	var tables []string
	if runs(subjects.StepTransform.Name) {
		for _, ds := range datasets {
			for _, t := range transform.TablesOf(ds) {
				if !slices.Contains(tables, t) {
					tables = append(tables, t)
				}
			}
		}
	}
	f.lookups = tables
	if len(tables) > 0 {
		js, err := jetstream.New(cfg.Conn)
		if err != nil {
			return nil, err
		}
		var inline []*pipeline.Lookup
		for _, name := range tables {
			if l := cfg.Spec.Lookup(name); l != nil && l.CSV == "" {
				inline = append(inline, l)
			}
		}
		f.tables, err = transform.NewKVTables(transform.KVTablesConfig{
			JS: js, Tables: tables, Inline: inline, Replicas: cfg.Streams.Replicas, Logger: cfg.Logger,
			LoadHintFunc: func(table string) string { return loadHint(cfg.Spec, table) },
		})
		if err != nil {
			return nil, err
		}
	}

	if runs(subjects.StepIngest.Name) {
		f.ingest = true
		if err := f.ingestMembers(datasets); err != nil {
			return nil, err
		}
	}
	for _, ds := range datasets {
		// A step in the dataset's external_steps is run by a program
		// outside jetfleet on the same durable consumer; the fleet leaves it be.
		if runs(subjects.StepValidate.Name) && !ds.External(subjects.StepValidate.Name) {
			h, err := validate.New(ds)
			if err != nil {
				return nil, err
			}
			if err := f.addWorkers(subjects.StepValidate, ds.Name, func() (workers.Handler, error) { return h, nil }, nil); err != nil {
				return nil, err
			}
		}
		if runs(subjects.StepTransform.Name) && !ds.External(subjects.StepTransform.Name) {
			var tbl transform.Tables
			if f.tables != nil {
				tbl = f.tables
			}
			th, err := transform.New(ds, tbl)
			if err != nil {
				return nil, err
			}
			h := th.WithPartitions(cfg.Streams.Partitions)
			var waitFunc func(context.Context, func(string)) error
			if used := transform.TablesOf(ds); f.tables != nil && len(used) > 0 {
				// Without its rows a lookup dead-letters every record
				// (missing: dlq) or passes it on unenriched: the step waits
				// for its tables instead, consuming nothing.
				tables := f.tables
				waitFunc = func(ctx context.Context, waitingFunc func(string)) error { return tables.Wait(ctx, used, waitingFunc) }
			}
			if err := f.addWorkers(subjects.StepTransform, ds.Name, func() (workers.Handler, error) { return h, nil }, waitFunc); err != nil {
				return nil, err
			}
		}
		if runs(subjects.StepAggregate.Name) {
			// Records published without a key token get it here and come
			// back to the partitions: the aggregator's intake, run beside it.
			rk, err := transform.NewRekey(ds, cfg.Streams.PartitionCount())
			if err != nil {
				return nil, err
			}
			if err := f.addWorkers(subjects.StepRekey, ds.Name, func() (workers.Handler, error) { return rk, nil }, nil); err != nil {
				return nil, err
			}
			replicas := max(cfg.Replicas[subjects.StepAggregate.Name], 1)
			for i := range replicas {
				m, ok, err := f.aggregateMember(ds, i+1, replicas)
				if err != nil {
					return nil, err
				}
				if ok {
					f.Members = append(f.Members, m)
				}
			}
		}
	}
	if runs(subjects.StepAlert.Name) && len(cfg.Spec.Alerts) > 0 {
		if err := f.alertMembers(datasets); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// addWorkers adds the replicas of step on dataset; waitFunc, if set, is
// their workers.Config.WaitFunc.
func (f *Fleet) addWorkers(step subjects.Step, dataset string, newHandlerFunc func() (workers.Handler, error), waitFunc func(context.Context, func(string)) error) error {
	for i := range max(f.cfg.Replicas[step.Name], 1) {
		w, err := workers.New(workers.Config{
			Conn:              f.cfg.Conn,
			Step:              step,
			Dataset:           dataset,
			NewHandlerFunc:    newHandlerFunc,
			Version:           f.cfg.Version,
			Logger:            f.cfg.Logger,
			QuietStart:        f.cfg.QuietStart,
			HeartbeatInterval: f.cfg.HeartbeatInterval,
			Consumer:          f.cfg.Consumer,
			Streams:           f.cfg.Streams,
			WaitFunc:          waitFunc,
		})
		if err != nil {
			return err
		}
		f.Members = append(f.Members, Member{Name: fmt.Sprintf("%s/%s#%d", step.Name, dataset, i+1), Worker: w})
	}
	return nil
}

// Prepare loads lookup tables (when configured) and holds them in memory.
// It returns once they are loaded, so no transform runs without them.
func (f *Fleet) Prepare(ctx context.Context) error {
	if f.tables == nil {
		return nil
	}
	if f.cfg.LoadLookups {
		js, err := jetstream.New(f.cfg.Conn)
		if err != nil {
			return err
		}
		if err := transform.LoadTables(ctx, js, f.cfg.Spec, f.cfg.Streams.Replicas); err != nil {
			return fmt.Errorf("load lookup tables: %w", err)
		}
	}
	return f.tables.Start(ctx)
}

// Close releases what Prepare holds.
func (f *Fleet) Close(ctx context.Context) error {
	if f.tables == nil {
		return nil
	}
	return f.tables.Stop(ctx)
}

// loadHint is the command that loads table of spec into its bucket.
func loadHint(spec *pipeline.Spec, table string) string {
	if fi, err := os.Stat(spec.File); err == nil && fi.Mode().IsRegular() {
		return fmt.Sprintf("jetfleet lookup load --pipeline %s %s", spec.File, table)
	}
	return "jetfleet lookup load " + table // the built-in pipeline
}

// Waiting lists the fleet's workers that wait before consuming anything,
// as "<step>/<dataset>: <what for>" (see workers.Config.WaitFunc).
func (f *Fleet) Waiting() []string {
	var out []string
	for _, m := range f.Members {
		if m.Worker == nil {
			continue
		}
		if why := m.Worker.Waiting(); why != "" {
			out = append(out, m.Name+": "+why)
		}
	}
	return out
}

// Workers lists the step workers of the fleet.
func (f *Fleet) Workers() []*workers.Worker {
	var ws []*workers.Worker
	for _, m := range f.Members {
		if m.Worker != nil {
			ws = append(ws, m.Worker)
		}
	}
	return ws
}

// Beats is the current heartbeat of every step worker of the fleet,
// aggregator partitions running now included.
func (f *Fleet) Beats() []subjects.Beat {
	var beats []subjects.Beat
	for _, w := range f.Workers() {
		beats = append(beats, w.Snapshot())
	}
	for _, s := range f.sets {
		for _, r := range s.runners() {
			beats = append(beats, r.w.Snapshot())
		}
	}
	return beats
}
