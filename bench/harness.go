package bench

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// dataset is the shop pipeline's dataset the generator feeds.
const dataset = "orders"

// persistedHops are the stage streams a record is written to and read
// from on its way to the marts: JF_INGEST, JF_VALID, JF_CLEAN.
const persistedHops = 3

// errStopped is the cause the harness cancels the fleet with, so a stop
// reads as a stop and not as a failure.
var errStopped = errors.New("bench run over")

// Run publishes cfg.Events generated orders through the whole shop
// pipeline in this process, waits until the marts hold them, measures,
// runs the baselines and verifies the marts. A run whose marts or counts
// are wrong returns its Result with Verified false and a nil error; an
// error means nothing trustworthy was measured.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With().Str("component", "bench").Str("mode", string(cfg.Mode)).Logger()
	if ms, err := marts.ReadManifests(cfg.DataDir); err != nil {
		return nil, err
	} else if len(ms) > 0 {
		return nil, fmt.Errorf("%w: %s already holds marts", ErrNotFresh, cfg.DataDir)
	}
	spec := examples.Shop()
	ds := spec.Dataset(dataset)

	// Server is redacted: results are written to files and shared.
	res := &Result{
		Time: time.Now().UTC(), Mode: cfg.Mode, Events: cfg.Events, Seed: cfg.Seed,
		DurationSeconds: cfg.Duration.Seconds(), MemoryLimit: cfg.MemoryLimit,
		Server: workers.RedactURL(cfg.NatsURL), CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), PersistedHops: persistedHops,
	}
	if cfg.Mode == ModeBulk {
		res.BulkSize = cfg.BulkSize
	}

	connect, shutdown, err := server(cfg, log)
	if err != nil {
		return nil, err
	}
	defer shutdown()
	if cfg.NatsURL == "" {
		res.Server = "embedded"
	}
	fleetNC, err := connect("jetfleet-bench-fleet")
	if err != nil {
		return nil, err
	}
	defer fleetNC.Close()
	js, err := jetstream.New(fleetNC)
	if err != nil {
		return nil, err
	}
	if err := subjects.Ensure(ctx, js, subjects.StreamOptions{}); err != nil {
		return nil, err
	}
	if err := checkFresh(ctx, js); err != nil {
		return nil, err
	}

	runTag := uint64(time.Now().UnixNano()) | 1
	lat := newLatencyRecorder(runTag)
	fl, err := fleet.Build(fleet.Config{
		Conn: fleetNC, Logger: cfg.Logger, Version: cfg.Version, Spec: spec, LoadLookups: true,
		DataDir: cfg.DataDir, MemoryLimit: cfg.MemoryLimit, Replicas: cfg.Workers,
		// The scenario's steps; the record alert step reads JF_CLEAN beside
		// the aggregator and is no part of the path to the marts.
		Steps:                  fleet.StepNames(nil),
		AggregateCommittedFunc: lat.committedBatch,
	})
	if err != nil {
		return nil, err
	}
	if err := fl.Prepare(ctx); err != nil {
		return nil, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = fl.Close(closeCtx)
	}()
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: cfg.Logger})
	for _, m := range fl.Members {
		tree.Add(m.Name, m.Run)
	}
	runCtx, cancelFleet := context.WithCancelCause(ctx)
	treeDone := make(chan error, 1)
	go func() { treeDone <- tree.Run(runCtx) }()
	stopFleet := sync.OnceValue(func() error {
		cancelFleet(errStopped)
		return <-treeDone
	})
	defer func() { _ = stopFleet() }() // the run's own end checks the error; an early return has its own
	for _, step := range stepConsumers() {
		res.Workers = append(res.Workers, StepWorkers{Step: step.step, Replicas: max(cfg.Workers[step.step], 1)})
	}

	// Consumers exist before the clock starts, so start-up is not timed.
	before, err := consumerInfos(ctx, js, ds.Name, true)
	if err != nil {
		return nil, err
	}

	src := newSource(cfg, ds.Name, runTag)
	closedLoop := cfg.Rate == 0 && cfg.Duration == 0
	var msgs []*nats.Msg
	if closedLoop {
		msgs = src.pregenerate(int64(cfg.Events))
	}
	pub, err := newPublisher(connect, lat.noteSent)
	if err != nil {
		return nil, err
	}
	defer pub.close()

	var phase atomic.Value
	phase.Store("publishing")
	smp := newSampler(js, ds.Name, before, cfg.SampleEvery)
	smp.publishedFunc = pub.records.Load
	smp.committedFunc = lat.committedRecords
	smp.duckdbFunc = func(ctx context.Context) int64 { n, _ := fl.AggregateMemory(ctx); return n }
	smp.onSampleFunc = func(s Sample) {
		if cfg.ProgressFunc == nil {
			return
		}
		p := Progress{
			Phase: phase.Load().(string), Elapsed: time.Duration(s.At * float64(time.Second)),
			Target: int64(cfg.Events), Duration: cfg.Duration, Published: s.Published, Committed: s.Committed,
		}
		for _, st := range s.Steps {
			p.Lag += st.Lag
		}
		cfg.ProgressFunc(p)
	}

	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	cpu0, _ := usage()
	start := time.Now()
	smp.start = start
	sampleCtx, stopSampling := context.WithCancel(ctx)
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		smp.run(sampleCtx)
	}()
	defer func() {
		stopSampling()
		<-sampling
	}()

	if closedLoop {
		err = pub.all(ctx, msgs, recordsOf)
	} else {
		err = pub.stream(ctx, src, int64(cfg.Events), cfg.Duration, cfg.Rate)
	}
	if err != nil {
		return nil, err
	}
	res.Events = int(src.records)
	res.Generated = src.counts
	res.Rate = cfg.Rate
	res.Publish = newRate(pub.messages.Load(), src.records, pub.elapsed)
	log.Info().Int64("messages", pub.messages.Load()).Int64("records", src.records).Dur("took", pub.elapsed).Msg("published, waiting for the marts")
	phase.Store("draining")
	// The heap as publishing ends: what the load made the workers and
	// the embedded server hold.
	if err := writeHeapProfile(cfg.MemProfile); err != nil {
		return nil, err
	}

	waitCtx, cancelWait := context.WithTimeout(ctx, cfg.Timeout)
	st, err := supervisor.WaitIdle(waitCtx, js, supervisor.WaitIdleOptions{
		Poll:     100 * time.Millisecond,
		Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(supervisor.DirMarts(cfg.DataDir))},
		ProgressFunc: func(_ *supervisor.Status, busy string) {
			if busy != "" {
				log.Debug().Str("busy", busy).Msg("waiting")
			}
		},
	})
	cancelWait()
	if err != nil {
		return nil, err
	}
	cpu1, rss := usage()
	stopProfile()
	stopSampling()
	<-sampling
	smp.sample(ctx) // the final state, after idle
	stepDone, samples := smp.finished()
	res.Samples = samples
	flushed, committed, prog, err := lastWrites(cfg.DataDir, ds.Name)
	if err != nil {
		return nil, err
	}
	after, err := consumerInfos(ctx, js, ds.Name, false)
	if err != nil {
		return nil, err
	}
	res.Redeliveries = redeliveries(before, after)
	res.DeadLetters = st.DeadLetters
	events := src.records
	if last := lat.lastCommit(); !last.IsZero() {
		committed = last // the commit hook's clock, not the progress mirror's
	}
	res.EndToEnd = newRate(0, events, flushed.Sub(start))
	res.Committed = newRate(0, events, committed.Sub(start))
	res.MartLagSeconds = flushed.Sub(committed).Seconds()
	for i, sc := range stepConsumers() {
		if sc.step == subjects.StepTransform.Name && !stepDone[i].IsZero() {
			res.AggregateLagSeconds = committed.Sub(stepDone[i]).Seconds()
		}
	}
	res.Latency = lat.result()
	res.CPUSeconds = (cpu1 - cpu0).Seconds()
	res.CPUSecondsPerMillon = res.CPUSeconds / float64(events) * 1e6
	res.PeakRSSBytes = rss

	// Stop the fleet before the baselines so they get the machine alone.
	if err := stopFleet(); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errStopped) {
		res.Mismatches = append(res.Mismatches, fmt.Sprintf("fleet stopped with an error: %v", err))
	}

	clean, err := readClean(ctx, js, ds)
	if err != nil {
		return nil, err
	}
	res.Observed = Counts{
		Valid:     int64(clean.distinct),
		Invalid:   int64(res.DeadLetters),
		Duplicate: pub.duplicates + int64(clean.records-clean.distinct),
	}
	res.Duplicates = uint64(res.Observed.Duplicate)
	res.Mismatches = append(res.Mismatches, checkCounts(res, clean, prog)...)
	if res.Steps, err = stepRates(ctx, js, cfg, ds.Name, start, stepDone, events, pub.duplicates, clean.records); err != nil {
		return nil, err
	}

	cleanFile := filepath.Join(cfg.DataDir, "bench", "clean.ndjson")
	expected, batchTook, err := batchMarts(ctx, cleanFile, clean.lines, spec, ds)
	if err != nil {
		return nil, err
	}
	res.BatchSeconds = batchTook.Seconds()
	checks, mism, err := compareMarts(ctx, cfg.DataDir, spec, ds.Name, expected)
	if err != nil {
		return nil, err
	}
	res.Marts = checks
	res.Mismatches = append(res.Mismatches, mism...)

	if !closedLoop {
		// The raw hop moves the same kind of messages as fast as it can.
		msgs = newSource(cfg, ds.Name, runTag).pregenerate(min(events, rawHopMaxRecords))
	}
	rawRecords := int64(0)
	for _, m := range msgs {
		rawRecords += int64(recordsOf(m))
	}
	raw, err := rawHop(ctx, connect, msgs, rawRecords)
	if err != nil {
		return nil, fmt.Errorf("raw hop baseline: %w", err)
	}
	res.RawHop = raw
	if raw.RecordsPerSec > 0 {
		res.HopEfficiency = res.EndToEnd.RecordsPerSec * persistedHops / raw.RecordsPerSec
		res.CommittedHopEfficiency = res.Committed.RecordsPerSec * persistedHops / raw.RecordsPerSec
	}
	if res.BatchSeconds > 0 {
		res.FleetBatchRatio = res.EndToEnd.Seconds / res.BatchSeconds
	}
	res.Verified = len(res.Mismatches) == 0
	return res, nil
}

// server starts the embedded server unless cfg names one, and returns how
// to connect to it. Fleet, publisher and baselines each get their own
// connection, as separate clients would.
func server(cfg Config, log zerolog.Logger) (connect func(name string) (*nats.Conn, error), shutdown func(), err error) {
	if cfg.NatsURL != "" {
		return func(name string) (*nats.Conn, error) {
			nc, err := nats.Connect(cfg.NatsURL, nats.Name(name))
			if err != nil {
				return nil, fmt.Errorf("connect to %s: %w", workers.RedactURL(cfg.NatsURL), err)
			}
			return nc, nil
		}, func() {}, nil
	}
	srv, err := embedded.Start(embedded.Config{
		StoreDir: filepath.Join(cfg.DataDir, "nats"), Port: -1,
		Logger: log.With().Str("component", "nats-server").Logger(), Quiet: true,
	})
	if err != nil {
		return nil, nil, err
	}
	return func(name string) (*nats.Conn, error) {
		// In process, as `jetfleet dev` connects its fleet.
		return nats.Connect(srv.ClientURL(), nats.Name(name), nats.InProcessServer(srv))
	}, srv.Shutdown, nil
}

// checkFresh fails when a stage stream already holds messages: the run's
// counts and its marts must come from this run's records alone.
func checkFresh(ctx context.Context, js jetstream.JetStream) error {
	for _, name := range []string{subjects.StreamIngest, subjects.StreamValid, subjects.StreamClean, subjects.StreamDLQ} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		if info.State.Msgs > 0 {
			return fmt.Errorf("%w: stream %s holds %d message(s)", ErrNotFresh, name, info.State.Msgs)
		}
	}
	return nil
}

// stepConsumer is a durable consumer of one step and its stream.
type stepConsumer struct {
	step, stream string
}

func stepConsumers() []stepConsumer {
	return []stepConsumer{
		{subjects.StepValidate.Name, subjects.StreamIngest},
		{subjects.StepTransform.Name, subjects.StreamValid},
		{subjects.StepAggregate.Name, subjects.StreamClean},
	}
}

// consumerInfos returns the step consumers' infos; with wait it polls
// until the workers have created them.
func consumerInfos(ctx context.Context, js jetstream.JetStream, ds string, wait bool) ([]*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var out []*jetstream.ConsumerInfo
	var names []stepConsumer // step: the consumer's name
	for _, sc := range stepConsumers() {
		if sc.step != subjects.StepAggregate.Name {
			names = append(names, stepConsumer{subjects.ConsumerName(sc.step, ds), sc.stream})
			continue
		}
		// The aggregator has one consumer per partition of the clean stage.
		n, err := cleanPartitions(ctx, js, wait, t.C)
		if err != nil {
			return nil, err
		}
		for p := range n {
			names = append(names, stepConsumer{subjects.PartitionConsumerName(sc.step, ds, p), sc.stream})
		}
	}
	for _, sc := range names {
		for {
			c, err := js.Consumer(ctx, sc.stream, sc.step)
			if err == nil {
				info, err := c.Info(ctx)
				if err != nil {
					return nil, err
				}
				out = append(out, info)
				break
			}
			if !wait || !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Errorf("consumer %s: %w", sc.step, err)
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("consumer %s never appeared: %w", sc.step, context.Cause(ctx))
			case <-t.C:
			}
		}
	}
	return out, nil
}

// cleanPartitions reads the partition count of JF_CLEAN, waiting for the
// stream when wait is set.
func cleanPartitions(ctx context.Context, js jetstream.JetStream, wait bool, tick <-chan time.Time) (int, error) {
	for {
		s, err := js.Stream(ctx, subjects.StreamClean)
		if err == nil {
			return max(subjects.PartitionsOf(s.CachedInfo().Config), 1), nil
		}
		if !wait || !errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, fmt.Errorf("stream %s: %w", subjects.StreamClean, err)
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("stream %s never appeared: %w", subjects.StreamClean, context.Cause(ctx))
		case <-tick:
		}
	}
}

// redeliveries is deliveries beyond the first over the run: the
// consumer's delivery count grew by more than the stream sequences it
// moved over.
func redeliveries(before, after []*jetstream.ConsumerInfo) uint64 {
	var n uint64
	for i := range before {
		deliveries := after[i].Delivered.Consumer - before[i].Delivered.Consumer
		messages := after[i].Delivered.Stream - before[i].Delivered.Stream
		if deliveries > messages {
			n += deliveries - messages
		}
	}
	return n
}

// lastWrites is when the dataset's marts were last flushed and its state
// last committed, with the committed progress.
func lastWrites(dataDir, ds string) (flushed, committed time.Time, prog marts.Progress, err error) {
	manifests, err := marts.ReadManifests(dataDir)
	if err != nil {
		return flushed, committed, prog, err
	}
	for _, m := range manifests {
		if m.Kind == marts.KindMart && m.Dataset == ds && m.UpdatedAt.After(flushed) {
			flushed = m.UpdatedAt
		}
	}
	progress, err := marts.ReadProgress(dataDir)
	if err != nil {
		return flushed, committed, prog, err
	}
	for _, p := range progress {
		if p.Dataset == ds {
			prog, committed = p, p.UpdatedAt
		}
	}
	if flushed.IsZero() || committed.IsZero() {
		return flushed, committed, prog, fmt.Errorf("dataset %s: no mart flushed or no progress written", ds)
	}
	return flushed, committed, prog, nil
}
