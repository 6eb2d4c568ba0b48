package fleet

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/alert"
)

// partitionSet is one aggregator replica of a dataset: it runs an
// aggregator and a worker for each partition it owns, and a mart builder
// that builds the dataset's marts from every partition's lake. It owns a
// fixed set of partitions, or (claim mode) claims a fair share through
// leases in the partition bucket. See docs/scale-out.md.
type partitionSet struct {
	f       *Fleet
	ds      *pipeline.Dataset
	n       int
	static  []int // owned partitions unless claiming
	claim   bool
	owner   string
	log     zerolog.Logger
	builder *aggregate.MartBuilder
	rules   *alert.MartRules // alert rules on the marts, nil if none
	// partitionMemory is each owned partition's DuckDB memory limit.
	partitionMemory string

	mu      sync.Mutex
	running map[int]*partitionRunner
}

// partitionFlushInterval is how long a partition's new records wait for
// their lake flush (and so for the marts) at most.
const partitionFlushInterval = 5 * time.Second

// partitionRunner is one owned partition: its aggregator and worker.
type partitionRunner struct {
	p   int
	agg *aggregate.Aggregator
	w   *workers.Worker
	// stopControl ends the worker's control service (its NATS micro
	// service); partition workers come and go, so the set serves it.
	stopControl func()
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
	var err error
	if s.rules, err = f.martRules(ds); err != nil {
		return Member{}, err
	}
	builderMemory, err := s.divideMemory()
	if err != nil {
		return Member{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	bcfg := aggregate.MartBuilderConfig{
		DataDir: cfg.DataDir, Dataset: DatasetConfig(ds), Marts: martsOf(cfg.Spec, ds.Name),
		Partitions: n, MemoryLimit: builderMemory, Logger: cfg.Logger,
		// Half the cores: a build is a burst of DuckDB work beside the
		// pipeline, and with every core it starves the steps (lag spikes
		// of thousands of messages in a soak on 2 cores).
		Threads: max(1, runtime.NumCPU()/2),
	}
	if s.rules != nil {
		bcfg.FlushedFunc = s.rules.Flushed // the marts are written by the builder
	}
	if s.builder, err = aggregate.NewMartBuilder(bcfg); err != nil {
		return Member{}, err
	}
	f.sets = append(f.sets, s)
	return Member{Name: fmt.Sprintf("%s/%s#%d", subjects.StepAggregate.Name, ds.Name, replica), RunFunc: s.run}, nil
}

// divideMemory splits the replica's DuckDB memory limit between its
// DuckDB instances, each of which has a buffer pool of its own: the mart
// builder gets half, the partitions it may own share the other half (all
// N when claiming, since its share changes as replicas come and go). So
// the replica stays within --memory-limit however many partitions it
// runs. It sets the partitions' limit and returns the builder's.
func (s *partitionSet) divideMemory() (string, error) {
	limit := s.f.cfg.MemoryLimit
	if limit == "" {
		limit = "1GB"
	}
	owned := len(s.static)
	if s.claim {
		owned = s.n
	}
	var err error
	if s.partitionMemory, err = aggregate.ShareMemoryLimit(limit, 2*max(owned, 1)); err != nil {
		return "", err
	}
	builder, err := aggregate.ShareMemoryLimit(limit, 2)
	if err != nil {
		return "", err
	}
	s.log.Debug().Str("builder", builder).Str("partition", s.partitionMemory).Int("partitions", owned).Msg("DuckDB memory divided")
	return builder, nil
}

func (s *partitionSet) run(ctx context.Context) error {
	if err := s.builder.Start(ctx); err != nil {
		return err
	}
	s.builder.Kick() // marts behind the lake after a crash are rebuilt at once
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
	// The last build runs after every owned partition's final flush.
	return errors.Join(runErr, stopErr, s.builder.Stop(stopCtx))
}

func (s *partitionSet) staticLoop(ctx context.Context) error {
	s.log.Info().Ints("partitions", s.static).Int("of", s.n).Msg("aggregator owns partitions")
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
	agg, err := aggregate.New(aggregate.Config{
		DataDir:     cfg.DataDir,
		Dataset:     DatasetConfig(s.ds),
		MemoryLimit: s.partitionMemory,
		Threads:     1, // one of many states in the process; a partition's batches are small
		// A lake flush writes (and fsyncs) a file per date it touches; with
		// a flush per partition, flushing as often as one aggregator would
		// multiplies the files and fsyncs by the partitions. The final
		// flush on stop is not delayed.
		FlushInterval: partitionFlushInterval,
		Logger:        s.log.With().Int("partition", p).Logger(),
		Partition:     &aggregate.Partition{Index: p, LakeFlushedFunc: s.builder.Kick},
		Committed:     cfg.AggregateCommitted,
	})
	if err != nil {
		return err
	}
	wcfg := agg.WorkerConfig(workers.Config{
		Conn: cfg.Conn, Logger: cfg.Logger, Version: cfg.Version,
		Consumer: cfg.Consumer, Streams: cfg.Streams,
	})
	wcfg.Partition, wcfg.Partitions = p, s.n
	w, err := workers.New(wcfg)
	if err != nil {
		return err
	}
	agg.SetFeeder(w.Pause, w.Resume) // a data dir refusing writes pauses intake
	s.declareConsumer(ctx, p)
	if err := agg.Start(ctx); err != nil {
		return fmt.Errorf("partition %d: %w", p, err)
	}
	if err := w.Start(ctx); err != nil {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return errors.Join(fmt.Errorf("partition %d: %w", p, err), agg.Stop(stopCtx))
	}
	stopControl, err := w.ServeControl()
	if err != nil {
		s.log.Warn().Err(err).Int("partition", p).Msg("control service not served")
		stopControl = func() {}
	}
	s.mu.Lock()
	s.running[p] = &partitionRunner{p: p, agg: agg, w: w, stopControl: stopControl}
	s.mu.Unlock()
	return nil
}

// declareConsumer creates partition p's consumer before its state opens
// (which can take a while), so status --wait-idle sees the partition's
// backlog from the start. Errors are left to the worker's own binding.
func (s *partitionSet) declareConsumer(ctx context.Context, p int) {
	cfg := s.f.cfg
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

// stopPartition drains p's worker, then flushes and closes its state.
func (s *partitionSet) stopPartition(ctx context.Context, p int) error {
	s.mu.Lock()
	r := s.running[p]
	delete(s.running, p)
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	err := errors.Join(r.w.Stop(ctx), r.agg.Stop(ctx))
	r.stopControl()
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
