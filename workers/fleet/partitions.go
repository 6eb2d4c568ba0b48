package fleet

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/alert"
)

// partitionSet is one aggregator replica of a dataset: one DuckDB engine,
// an intake that de-duplicates and journals the records of the partitions
// it owns and flushes them to the lake, a worker per owned partition, and
// a mart builder that keeps the dataset's marts from the lake (one replica
// builds at a time). It owns a fixed set of partitions, or (claim mode)
// claims a fair share through leases in the partition bucket. See
// docs/scale-out.md.
type partitionSet struct {
	f      *Fleet
	ds     *pipeline.Dataset
	n      int
	static []int // owned partitions unless claiming
	claim  bool
	owner  string
	log    zerolog.Logger
	rules  *alert.MartRules // alert rules on the marts, nil if none

	mu      sync.Mutex
	intake  *aggregate.Intake // of the current run
	engine  *aggregate.Engine
	running map[int]*partitionRunner
}

// partitionRunner is one owned partition's worker.
type partitionRunner struct {
	p int
	w *workers.Worker
	// stopControlFunc ends the worker's control service (its NATS micro
	// service); partition workers come and go, so the set serves it.
	stopControlFunc func()
}

func (f *Fleet) partitionMember(ds *pipeline.Dataset, replica, replicas int) (Member, error) {
	cfg := f.cfg
	n := cfg.Streams.PartitionCount()
	s := &partitionSet{f: f, ds: ds, n: n, claim: cfg.AggregateClaim, owner: workers.NewWorkerID(), running: map[int]*partitionRunner{}}
	s.log = cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", ds.Name).Str("owner", s.owner).Logger()
	if !s.claim {
		owned, err := subjects.ParsePartitions(cfg.AggregatePartitions, n)
		if err != nil {
			return Member{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		// Replicas of one process divide the set round-robin.
		for i, p := range owned {
			if i%replicas == replica-1 {
				s.static = append(s.static, p)
			}
		}
	}
	if _, err := aggregate.ParseMemoryLimit(s.memoryLimit()); err != nil {
		return Member{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var err error
	if s.rules, err = f.martRules(ds); err != nil {
		return Member{}, err
	}
	f.sets = append(f.sets, s)
	return Member{Name: fmt.Sprintf("%s/%s#%d", subjects.StepAggregate.Name, ds.Name, replica), RunFunc: s.run}, nil
}

func (s *partitionSet) memoryLimit() string {
	if s.f.cfg.MemoryLimit == "" {
		return "1GB"
	}
	return s.f.cfg.MemoryLimit
}

// run is one run of the replica: everything it builds is new, so the tree
// can restart it after a failure.
func (s *partitionSet) run(ctx context.Context) (err error) {
	cfg := s.f.cfg
	ds := DatasetConfig(s.ds)
	owner := aggregate.NewOwner(s.owner)
	stateDir := marts.DatasetStateDir(cfg.DataDir, ds.Name)
	if err := aggregate.RemoveStaleTempDirs(stateDir, ".duckdb-"); err != nil {
		s.log.Warn().Err(err).Msg("remove temp dirs of earlier runs")
	}
	eng, err := aggregate.OpenEngine(aggregate.EngineConfig{
		MemoryLimit: s.memoryLimit(),
		// Half the cores: a lake flush or mart build is a burst of DuckDB
		// work beside the pipeline, and with every core it starves the
		// steps.
		Threads: max(1, runtime.NumCPU()/2),
		TempDir: filepath.Join(stateDir, ".duckdb-"+owner),
	})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	bcfg := aggregate.MartBuilderConfig{
		Engine: eng, DataDir: cfg.DataDir, Dataset: ds, Marts: martsOf(cfg.Spec, ds.Name), Logger: cfg.Logger,
	}
	if s.rules != nil {
		// Rules run on the connection that wrote the mart.
		bcfg.FlushedFunc = func(ctx context.Context, q aggregate.Querier, m marts.Manifest) { s.rules.MartFlushed(ctx, q, m) }
	}
	builder, err := aggregate.NewMartBuilder(bcfg)
	if err != nil {
		return err
	}
	intake, err := aggregate.NewIntake(aggregate.IntakeConfig{
		Engine: eng, DataDir: cfg.DataDir, Dataset: ds, Owner: owner, Builder: builder,
		CommittedFunc: cfg.AggregateCommittedFunc, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.intake, s.engine = intake, eng
	s.mu.Unlock()
	if err := builder.Start(ctx); err != nil {
		return err
	}
	if err := intake.Start(ctx); err != nil {
		return errors.Join(err, builder.Stop(context.WithoutCancel(ctx)))
	}
	stopRules := runMartRules(ctx, s.rules)
	defer stopRules() // after the last build
	var runErr error
	if s.claim {
		runErr = s.claimLoop(ctx)
	} else {
		runErr = s.staticLoop(ctx)
	}
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	stopErr := s.stopAll(stopCtx)
	// The intake's final lake flush comes after every worker drained, the
	// last build after it.
	return errors.Join(runErr, stopErr, intake.Stop(stopCtx), builder.Stop(stopCtx))
}

func (s *partitionSet) staticLoop(ctx context.Context) error {
	ev := s.log.Info()
	if s.f.cfg.QuietStart {
		ev = s.log.Debug()
	}
	ev.Ints("partitions", s.static).Int("of", s.n).Msg("aggregator owns partitions")
	if err := s.startPartitions(ctx, s.static); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	_, err := s.waitOnce(ctx, nil)
	return err
}

// startPartitions starts ps concurrently: opening a state replays its
// log, and a replica may own many.
func (s *partitionSet) startPartitions(ctx context.Context, ps []int) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.startPartition(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitOnce waits for ctx (stop), a tick, or a partition worker that
// stopped on its own (stop with its error: the tree restarts the member).
func (s *partitionSet) waitOnce(ctx context.Context, tick <-chan time.Time) (bool, error) {
	runners := s.runners()
	failed := make(chan *partitionRunner, len(runners))
	quit := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-r.w.Stopped():
				failed <- r
			case <-quit:
			}
		}()
	}
	defer wg.Wait()
	defer close(quit)
	select {
	case <-ctx.Done():
		return true, nil
	case <-tick:
		return false, nil
	case r := <-failed:
		return true, fmt.Errorf("aggregate %s partition %d: worker stopped: %w", s.ds.Name, r.p, r.w.Err())
	}
}

// startPartition opens partition p's state and starts consuming it.
func (s *partitionSet) startPartition(ctx context.Context, p int) error {
	cfg := s.f.cfg
	s.mu.Lock()
	intake := s.intake
	s.mu.Unlock()
	wcfg := intake.WorkerConfig(workers.Config{
		Conn: cfg.Conn, Logger: cfg.Logger, Version: cfg.Version, QuietStart: cfg.QuietStart, HeartbeatInterval: cfg.HeartbeatInterval,
		Consumer: cfg.Consumer, Streams: cfg.Streams,
	}, p, s.n)
	w, err := workers.New(wcfg)
	if err != nil {
		return err
	}
	s.declareConsumer(ctx, p)
	if err := intake.OpenPartition(ctx, p); err != nil {
		return fmt.Errorf("partition %d: %w", p, err)
	}
	intake.SetFeeder(p, w.Pause, w.Resume) // a data dir refusing writes pauses intake
	if err := w.Start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return errors.Join(fmt.Errorf("partition %d: %w", p, err), intake.ClosePartition(stopCtx, p))
	}
	stopControl, err := w.ServeControl()
	if err != nil {
		s.log.Warn().Err(err).Int("partition", p).Msg("control service not served")
		stopControl = func() {}
	}
	s.mu.Lock()
	s.running[p] = &partitionRunner{p: p, w: w, stopControlFunc: stopControl}
	s.mu.Unlock()
	return nil
}

// declareConsumer creates partition p's consumer before its state opens
// (which can take a while), so status --wait-idle sees the partition's
// backlog from the start. Errors are left to the worker's own binding.
func (s *partitionSet) declareConsumer(ctx context.Context, p int) {
	cfg := s.f.cfg
	if cfg.Streams.BindOnly {
		return // the admin's setup made it
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return
	}
	ccfg, err := subjects.PartitionConsumer(subjects.StepAggregate, s.ds.Name, p, s.n, cfg.Consumer)
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if subjects.Ensure(cctx, js, cfg.Streams) != nil {
		return
	}
	_, _ = js.CreateOrUpdateConsumer(cctx, subjects.StreamClean, ccfg)
}

// stopPartition drains p's worker, then flushes its journal to the lake
// and closes its state, so another replica may open it.
func (s *partitionSet) stopPartition(ctx context.Context, p int) error {
	s.mu.Lock()
	r := s.running[p]
	delete(s.running, p)
	intake := s.intake
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	err := errors.Join(r.w.Stop(ctx), intake.ClosePartition(ctx, p))
	r.stopControlFunc()
	if err != nil {
		s.log.Warn().Err(err).Int("partition", p).Msg("partition stopped with an error")
	}
	return err
}

// runners are the partitions running now.
func (s *partitionSet) runners() []*partitionRunner {
	s.mu.Lock()
	defer s.mu.Unlock()
	runners := make([]*partitionRunner, 0, len(s.running))
	for _, r := range s.running {
		runners = append(runners, r)
	}
	return runners
}

func (s *partitionSet) owned() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]int, 0, len(s.running))
	for p := range s.running {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// stopAll drains and flushes every owned partition, concurrently, so a
// replica stops in the time one partition takes.
func (s *partitionSet) stopAll(ctx context.Context) error {
	owned := s.owned()
	errs := make([]error, len(owned))
	var wg sync.WaitGroup
	for i, p := range owned {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.stopPartition(ctx, p)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
