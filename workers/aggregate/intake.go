package aggregate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// IntakeConfig configures an [Intake].
type IntakeConfig struct {
	// Engine runs the lake flushes. Required.
	Engine *Engine
	// DataDir holds state/ and lake/; replicas of the dataset's aggregator
	// share it. Required.
	DataDir string
	// Dataset is the dataset consumed. Required.
	Dataset DatasetConfig
	// Owner names this run of the intake in the lake's file names and log:
	// unique among the replicas sharing the data dir, and new for every
	// run. Default: a random id.
	Owner string
	// FlushRecords and FlushInterval: the lake is flushed once this many
	// records are pending, or this long after the last flush. Default
	// 100000 records, 1s.
	FlushRecords  int
	FlushInterval time.Duration
	// Builder, if set, is handed each lake flush's rows while they are
	// still in the engine, so it need not read them back from the lake.
	Builder *MartBuilder
	// CommittedFunc, if set, is called with each batch once it is
	// committed (journal synced), before it is acked: the bench measures
	// publish-to-commit latency with it. It must be quick.
	CommittedFunc func(batch []workers.Record)
	Logger        zerolog.Logger
}

func (c *IntakeConfig) setDefaults() {
	if c.Owner == "" {
		c.Owner = NewOwner("o")
	}
	if c.FlushRecords <= 0 {
		c.FlushRecords = 100_000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
}

func (c *IntakeConfig) validate() error {
	if c.Engine == nil {
		return fmt.Errorf("%w: intake without an engine", ErrInvalidConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: no data dir", ErrInvalidConfig)
	}
	if err := validateDataset(c.Dataset); err != nil {
		return err
	}
	if err := subjects.ValidateToken("owner", c.Owner); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// NewOwner is a new owner id for an intake's run: prefix (a worker id, so
// files tell where they came from) and a random suffix, usable as a file
// name and a subject token.
func NewOwner(prefix string) string {
	id := nuid.Next()
	return prefix + "-" + strings.ToLower(id[len(id)-6:])
}

// Intake is the aggregate step's intake of one dataset in one process: for
// each key partition it owns, it de-duplicates the records on the dataset's
// key and journals the new ones (a batch is acked once its journal is
// synced), and in the background it flushes what the journals hold to the
// lake in one DuckDB pass for all its partitions: a Parquet file per event
// date, listed by an entry in the lake's log. See docs/scale-out.md.
//
// Lifecycle: Start, then OpenPartition for each partition owned (and
// ClosePartition when one is handed over), Stop at the end: Stop flushes
// what is pending. Its methods are safe for concurrent use.
type Intake struct {
	startstop.Service
	cfg IntakeConfig
	log zerolog.Logger

	mu      sync.Mutex
	parts   map[int]*partition
	feeders map[int]feeder

	// flushMu orders lake flushes; nextN is the next entry of this owner's log.
	flushMu  sync.Mutex
	nextN    uint64
	flushErr error
	kick     chan struct{}

	storage storageState
	hooks   intakeHooks
	// lastCommit is when a batch last committed (unix ns).
	lastCommit atomic.Int64
}

// intakeHooks let tests stop a lake flush where a crash matters; an error
// from one leaves everything as a killed process would.
type intakeHooks struct {
	// beforeEntryFunc runs once the flush's files are in place, before its
	// log entry commits it.
	beforeEntryFunc func() error
	// afterEntryFunc runs once the entry is written, before the partitions
	// note it.
	afterEntryFunc func() error
}

type feeder struct{ pauseFunc, resumeFunc func() }

// NewIntake checks cfg. It does no I/O.
func NewIntake(cfg IntakeConfig) (*Intake, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := canonNewEncoder(cfg.Dataset.Schema, cfg.Dataset.Key); err != nil {
		return nil, fmt.Errorf("%w: dataset %s: %w", ErrInvalidConfig, cfg.Dataset.Name, err)
	}
	return &Intake{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", cfg.Dataset.Name).Str("owner", cfg.Owner).Logger(),
		parts:   map[int]*partition{},
		feeders: map[int]feeder{},
		nextN:   1,
		kick:    make(chan struct{}, 1),
	}, nil
}

func (in *Intake) newEncoder() (*canonEncoder, error) {
	return canonNewEncoder(in.cfg.Dataset.Schema, in.cfg.Dataset.Key)
}

// Owner is the owner id of this run.
func (in *Intake) Owner() string { return in.cfg.Owner }

// Start flushes the lake in the background.
func (in *Intake) Start(ctx context.Context) error {
	if err := checkOldState(in.cfg.DataDir, in.cfg.Dataset.Name); err != nil {
		return err
	}
	runCtx, err := in.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: intake of %s: %w", ErrInvalidConfig, in.cfg.Dataset.Name, err)
	}
	go func() {
		defer in.Finished()
		in.flusher(runCtx)
	}()
	return nil
}

// Stop ends the background flushes, flushes what is pending and closes
// every partition. Stop the workers feeding it first.
func (in *Intake) Stop(ctx context.Context) error {
	if err := in.Service.Stop(ctx); err != nil {
		return err
	}
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
	err := in.flushLocked(ctx)
	if err != nil {
		in.log.Warn().Err(err).Msg("final lake flush failed; the journals keep the records for the next start")
	}
	in.mu.Lock()
	parts := in.parts
	in.parts = map[int]*partition{}
	in.mu.Unlock()
	for _, pt := range parts {
		err = errors.Join(err, pt.close())
	}
	return err
}

// OpenPartition recovers partition p's state and makes the intake take its
// batches. Its journal may hold records a previous owner committed but did
// not flush; they go to the lake with the next flush.
func (in *Intake) OpenPartition(_ context.Context, p int) error {
	if p < 0 || p >= subjects.MaxPartitions {
		return fmt.Errorf("%w: partition %d", ErrInvalidConfig, p)
	}
	in.mu.Lock()
	_, open := in.parts[p]
	in.mu.Unlock()
	if open {
		return fmt.Errorf("%w: partition %d of %s already open", ErrInvalidConfig, p, in.cfg.Dataset.Name)
	}
	// A flush of this owner must not run against a half-open partition.
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
	pt, err := in.openPartition(p)
	if err != nil {
		return err
	}
	in.mu.Lock()
	in.parts[p] = pt
	in.mu.Unlock()
	if pt.pending > 0 {
		in.Kick()
	}
	return nil
}

// ClosePartition flushes what partition p holds to the lake and closes it,
// so another replica can open it. Stop p's worker first.
func (in *Intake) ClosePartition(ctx context.Context, p int) error {
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
	err := in.flushLocked(ctx)
	in.mu.Lock()
	pt := in.parts[p]
	delete(in.parts, p)
	delete(in.feeders, p)
	in.mu.Unlock()
	if pt == nil {
		return err
	}
	return errors.Join(err, pt.close())
}

// crash leaves the intake as a killed process would: nothing flushed or
// noted, the partitions' files closed and their locks let go. For tests.
func (in *Intake) crash() {
	_ = in.Service.Stop(context.Background())
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	for p, pt := range in.parts {
		pt.mu.Lock()
		pt.closed = true
		_ = pt.closeFiles()
		pt.mu.Unlock()
		delete(in.parts, p)
	}
}

// Kick asks for a lake flush soon.
func (in *Intake) Kick() {
	select {
	case in.kick <- struct{}{}:
	default:
	}
}

// Flush flushes every partition's journal to the lake now.
func (in *Intake) Flush(ctx context.Context) error {
	in.flushMu.Lock()
	defer in.flushMu.Unlock()
	return in.flushLocked(ctx)
}

func (in *Intake) partitions() []*partition {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]*partition, 0, len(in.parts))
	for _, pt := range in.parts {
		out = append(out, pt)
	}
	slices.SortFunc(out, func(a, b *partition) int { return a.p - b.p })
	return out
}

func (in *Intake) pending() int64 {
	var n int64
	for _, pt := range in.partitions() {
		pt.mu.Lock()
		n += pt.pending
		pt.mu.Unlock()
	}
	return n
}

// idleFlush is how long after the last commit what is pending goes to the
// lake, whatever FlushInterval says: the end of a burst reaches the marts
// at once.
const idleFlush = 100 * time.Millisecond

// flusher flushes the lake every FlushInterval, sooner once FlushRecords
// are pending or the intake has been idle for idleFlush; a flush that
// failed is retried with backoff.
func (in *Intake) flusher(ctx context.Context) {
	t := time.NewTicker(min(in.cfg.FlushInterval, idleFlush/2))
	defer t.Stop()
	fails := 0
	var next, last time.Time
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-in.kick:
			kicked = true
		}
		now := time.Now()
		if in.probeStorage(now) || now.Before(next) {
			continue
		}
		idle := now.Sub(time.Unix(0, in.lastCommit.Load())) >= idleFlush && in.pending() > 0
		if !kicked && !idle && now.Sub(last) < in.cfg.FlushInterval {
			continue
		}
		last = now
		err := in.Flush(context.WithoutCancel(ctx))
		if err == nil {
			fails = 0
			continue
		}
		if isStorageErr(err) {
			_ = in.storageFailed(err)
			continue
		}
		fails++
		delay := backoff(storageRetryMin, storageRetryMax, fails)
		next = now.Add(delay)
		in.log.Error().Err(err).Dur("retry_in", delay).Msg("lake flush failed; the journals keep the records, retrying")
	}
}

// Stats are an intake's counters over its open partitions.
type Stats struct {
	// Records are distinct records committed; Duplicates were dropped.
	Records, Duplicates int64
	// CommittedSeq is the highest stream sequence committed.
	CommittedSeq uint64
	// Pending are committed records not in the lake yet.
	Pending int64
	// KeyBytes is the memory of the partitions' key sets.
	KeyBytes int64
	// LastFlushError is the last lake flush's error, nil when it worked.
	LastFlushError error
}

// Stats returns the intake's counters.
func (in *Intake) Stats() Stats {
	var s Stats
	for _, pt := range in.partitions() {
		pt.mu.Lock()
		s.Records += pt.prog.Records
		s.Duplicates += pt.prog.Duplicates
		s.CommittedSeq = max(s.CommittedSeq, pt.prog.CommittedSeq)
		s.Pending += pt.pending
		s.KeyBytes += pt.keys.Bytes()
		pt.mu.Unlock()
	}
	in.flushMu.Lock()
	s.LastFlushError = in.flushErr
	in.flushMu.Unlock()
	return s
}

// WorkerConfig fills in cfg what makes it the aggregate worker of
// partition p (of partitions): step, dataset, partition and the batch
// handler. Unless set, it fetches batches of up to 4096 records and
// gathers one for at most 20ms: a commit costs about a sync, so under load
// batches grow with what arrives while the last one commits, and a trickle
// is committed within milliseconds. Unless set, MaxAckPending is four
// batches, so the server delivers the next batch while one commits.
func (in *Intake) WorkerConfig(cfg workers.Config, p, partitions int) workers.Config {
	if cfg.FetchBatch <= 0 {
		cfg.FetchBatch = 4096
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 20 * time.Millisecond
	}
	if cfg.Consumer.MaxAckPending <= 0 {
		cfg.Consumer.MaxAckPending = 4 * cfg.FetchBatch
	}
	cfg.Step = subjects.StepAggregate
	cfg.Dataset = in.cfg.Dataset.Name
	cfg.Partition, cfg.Partitions = p, partitions
	cfg.NewHandlerFunc = nil
	cfg.NewBatchHandlerFunc = func() (workers.BatchHandler, error) { return batchHandler{in: in, p: p}, nil }
	return cfg
}

// SetFeeder gives the intake the pause and resume of partition p's worker:
// a data dir refusing writes pauses intake until it takes them again.
func (in *Intake) SetFeeder(p int, pauseFunc, resumeFunc func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.feeders[p] = feeder{pauseFunc: pauseFunc, resumeFunc: resumeFunc}
}

type batchHandler struct {
	in *Intake
	p  int
}

// HandleBatch commits the batch's new records to the partition's journal;
// its nil error (and so the ack) comes only after the journal is synced.
func (h batchHandler) HandleBatch(_ context.Context, batch []workers.Record) ([]workers.Reject, error) {
	in := h.in
	in.mu.Lock()
	pt := in.parts[h.p]
	in.mu.Unlock()
	if pt == nil {
		return nil, fmt.Errorf("%w: partition %d of %s is not open", ErrNotStarted, h.p, in.cfg.Dataset.Name)
	}
	rejects, err := pt.commit(batch)
	if err != nil {
		if isStorageErr(err) {
			return nil, in.storageFailed(err)
		}
		return nil, err
	}
	in.storageWorked()
	in.lastCommit.Store(time.Now().UnixNano())
	if in.cfg.CommittedFunc != nil {
		in.cfg.CommittedFunc(batch)
	}
	if pt.pendingAtLeast(int64(in.cfg.FlushRecords)) {
		in.Kick()
	}
	return rejects, nil
}
