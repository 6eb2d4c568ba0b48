package aggregate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/nativemem"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Aggregator owns one dataset's DuckDB state and the marts and lake
// computed from it. It is the long-lived half of the aggregate step; the
// worker's batch handlers (see [Aggregator.NewBatchHandler]) feed it.
// Its methods are safe for concurrent use.
type Aggregator struct {
	cfg       Config
	log       zerolog.Logger
	conv      []converter
	insertSQL string
	outputs   []*output

	db *sql.DB
	// openDB is db for readers outside the aggregator's own goroutines
	// (DuckDBMemory); nil once closing.
	openDB atomic.Pointer[sql.DB]

	ingestMu   sync.Mutex
	ingestConn *sql.Conn
	meta       meta
	// commitsSinceOpen counts batches committed since the state was
	// opened; at recycleAfter the flusher recycles it.
	commitsSinceOpen atomic.Int64
	recycleAfter     atomic.Int64

	flushMu   sync.Mutex
	flushConn *sql.Conn
	flushErr  error

	pendMu sync.Mutex
	kick   chan struct{}

	// The data dir refusing writes (storage.go).
	storeMu               sync.Mutex
	pauseFeed, resumeFeed func()
	storeErr              error
	storeFails            int
	storeNext             time.Time

	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	done    chan struct{} // flusher goroutine finished
	stopped chan struct{}
	stopErr error
	stopOne sync.Once

	hooks hooks

	// progMu orders the writes of a partition's progress file.
	progMu sync.Mutex
	prog   marts.PartitionProgress
}

// hooks let tests stop the aggregator at the points a crash matters.
type hooks struct {
	// afterCommit runs after a batch is committed, before it is acked (a
	// mart builder's: after its batch of lake files, before the flushes).
	afterCommit func() error
	// beforeRename runs after a Parquet file is written aside and synced.
	beforeRename func(output, target string) error
	// beforeFlushCommit runs after every file of a flush is in place.
	beforeFlushCommit func(output string) error
	// afterRecycle runs after the state was closed and opened again.
	afterRecycle func()
}

// New checks cfg and builds an aggregator. It does no I/O.
func New(cfg Config) (*Aggregator, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Aggregator{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", cfg.Dataset.Name).Logger(),
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
	for _, c := range cfg.Dataset.Schema {
		conv, _ := converterFor(c.Type) // validated
		a.conv = append(a.conv, conv)
	}
	a.insertSQL = a.buildInsertSQL()
	a.outputs = a.buildOutputs()
	return a, nil
}

// Start opens (or creates) the state, finishes what a crash interrupted
// (stray temp files, marts behind the state), and starts flushing in the
// background. It returns once the aggregator is ready for batches.
func (a *Aggregator) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cancel != nil {
		return fmt.Errorf("%w: aggregator for %s already started", ErrInvalidConfig, a.cfg.Dataset.Name)
	}
	if err := a.open(ctx); err != nil {
		a.closeDB()
		return err
	}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	a.cancel = cancel
	a.done = make(chan struct{})
	go func() {
		defer close(a.done)
		a.flusher(runCtx)
	}()
	a.log.Info().Str("state", a.stateFile()).Int("outputs", len(a.outputs)).
		Int64("records", a.meta.records).Uint64("committed_seq", a.meta.committedSeq).Msg("aggregator started")
	return nil
}

// Stop stops the background flusher, flushes everything pending, and
// closes the state. Stop the worker feeding the aggregator first. Stop is
// idempotent and safe without Start.
func (a *Aggregator) Stop(ctx context.Context) error {
	a.stopOne.Do(func() {
		defer close(a.stopped)
		a.mu.Lock()
		cancel, done := a.cancel, a.done
		a.mu.Unlock()
		if cancel == nil {
			return
		}
		cancel(ErrStopped)
		<-done
		err := a.flushAll(ctx, true)
		if err != nil {
			a.log.Warn().Err(err).Msg("final flush failed; the next start redoes it")
		}
		a.stopErr = errors.Join(err, a.closeDB())
	})
	select {
	case <-a.stopped:
		return a.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopped is closed once Stop has finished.
func (a *Aggregator) Stopped() <-chan struct{} { return a.stopped }

// crash stops the aggregator the way a killed process would: no final
// flush, nothing written after the last commit. For tests.
func (a *Aggregator) crash() {
	a.stopOne.Do(func() {
		defer close(a.stopped)
		a.mu.Lock()
		cancel, done := a.cancel, a.done
		a.mu.Unlock()
		if cancel != nil {
			cancel(ErrStopped)
			<-done
		}
		a.closeDB()
	})
}

func (a *Aggregator) open(ctx context.Context) error {
	stateDir := filepath.Join(a.cfg.DataDir, marts.StateDir)
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	if err := a.openConns(ctx); err != nil {
		return err
	}
	conn := a.ingestConn
	if err := execAll(ctx, conn, a.schemaSQL()...); err != nil {
		return fmt.Errorf("state schema: %w", err)
	}
	if err := a.migrate(ctx, conn); err != nil {
		return err
	}
	if err := execAll(ctx, conn, a.viewSQL()...); err != nil {
		return fmt.Errorf("state views: %w", err)
	}
	if !a.cfg.builder { // a builder's rows come from lake files, not messages
		if err := execAll(ctx, conn, a.stageSQL()); err != nil {
			return fmt.Errorf("stage table: %w", err)
		}
	}
	var err error
	if a.meta, err = readMeta(ctx, conn); err != nil {
		return fmt.Errorf("read state: %w", err)
	}
	for _, o := range a.outputs {
		if err := a.openOutput(ctx, o); err != nil {
			return err
		}
	}
	a.writeProgress()
	return nil
}

// openConns opens the state's database and the ingest and flush
// connections.
func (a *Aggregator) openConns(ctx context.Context) error {
	settings := map[string]string{
		"memory_limit":   a.cfg.MemoryLimit,
		"temp_directory": strings.TrimSuffix(a.stateFile(), ".duckdb") + ".tmp",
	}
	if a.cfg.Threads > 0 {
		settings["threads"] = strconv.Itoa(a.cfg.Threads)
	}
	db, err := openDuckDB(a.stateFile(), settings)
	if err != nil {
		return err
	}
	a.db = db
	a.openDB.Store(db)
	if a.ingestConn, err = db.Conn(ctx); err != nil {
		return err
	}
	a.flushConn, err = db.Conn(ctx)
	a.commitsSinceOpen.Store(0)
	// Partitions commit at about the same pace: a random share on top
	// keeps their recycles from all falling in the same second.
	if n := a.cfg.RecycleCommits; n > 0 {
		a.recycleAfter.Store(int64(n + rand.IntN(n/2+1)))
	}
	return err
}

// DuckDB 1.5 keeps about 5 KB of C heap for each commit into a table with
// a unique index (the merge of the transaction's index into the table's),
// and gives it back only when the database closes: not on a checkpoint,
// not on a vacuum. Measured in isolation: 3,500 commits of 10 keys each
// grew the heap from 2.9 to 21 MB, 100 keys each to 35 MB, and without
// the key it stayed flat. The records table's key is such an index, and a
// partition commits a few batches a second, so its state would grow for as
// long as the process runs: about 10 MB a minute for 8 partitions at 1,500
// records/s. So the aggregator closes its state and opens it again after
// this many commits and a random half of it more, which costs a
// checkpoint and pauses the partition's intake for it (0.2-0.5 s of CPU
// at 50,000-200,000 records). Config.RecycleCommits overrides it.
const defaultRecycleCommits = 1000

// recycleDue reports whether the state has taken enough commits since it
// was opened to be recycled, or is closed after a recycle that failed.
func (a *Aggregator) recycleDue() bool {
	if a.cfg.RecycleCommits < 0 {
		return false
	}
	return a.commitsSinceOpen.Load() >= a.recycleAfter.Load() || a.openDB.Load() == nil
}

// recycle closes the state's database and opens it again. It holds both
// connections' locks, so no batch or flush runs in between; everything
// the aggregator keeps in memory (meta, flush positions) stays valid, as
// the state holds nothing uncommitted. A failure leaves the state closed
// and the flusher pauses intake, as for a full disk, until a later
// recycle opens it.
func (a *Aggregator) recycle(ctx context.Context) error {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	start := time.Now()
	if err := a.closeConns(); err != nil {
		// Its commits are in its write-ahead log: opening replays them.
		a.log.Warn().Err(err).Msg("closing the state to recycle it failed")
	}
	if err := a.openConns(ctx); err != nil {
		return errors.Join(fmt.Errorf("reopen state %s: %w", a.stateFile(), err), a.closeConns())
	}
	if !a.cfg.builder {
		if err := execAll(ctx, a.ingestConn, a.stageSQL()); err != nil {
			return errors.Join(fmt.Errorf("stage table: %w", err), a.closeConns())
		}
	}
	// Closing freed the state's heap: give it back to the OS now, once per
	// recycle, rather than leave it to the allocators.
	if err := nativemem.Release(); err != nil {
		a.log.Warn().Err(err).Msg("return freed memory to the OS")
	}
	a.log.Debug().Dur("took", time.Since(start)).Msg("state recycled")
	if a.hooks.afterRecycle != nil {
		a.hooks.afterRecycle()
	}
	return nil
}

// openOutput learns o's columns (checking its SQL), loads or registers its
// flush position, starts it over if its definition changed, and rewrites
// its manifest from the state.
func (a *Aggregator) openOutput(ctx context.Context, o *output) error {
	conn := a.flushConn
	cols, err := describe(ctx, conn, o.sql)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrBadMart, o.kind, o.name, err)
	}
	if err := checkPartitionColumns(o.name, cols, o.partitionBy); err != nil {
		return err
	}
	o.columns = cols
	colsJSON, _ := json.Marshal(cols)
	if err := removeTemp(o.dir, a.tempPrefix(o)); err != nil {
		return fmt.Errorf("%s %s: remove temp files: %w", o.kind, o.name, err)
	}
	var fp string
	var updated sql.NullTime
	err = conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT fingerprint, flushed_batch, last_seq, updated_at FROM %s WHERE name = ? AND kind = ?`, tableOutputs), o.name, o.kind).
		Scan(&fp, &o.flushedBatch, &o.lastSeq, &updated)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s VALUES (?, ?, ?, 0, 0, NULL, ?)`, tableOutputs), o.name, o.kind, o.fingerprint, string(colsJSON)); err != nil {
			return err
		}
	case err != nil:
		return err
	case fp != o.fingerprint:
		a.log.Info().Str(o.kind, o.name).Msg("definition changed; recomputing from the state")
		if err := os.RemoveAll(o.dir); err != nil {
			return err
		}
		o.flushedBatch, o.lastSeq, updated = 0, 0, sql.NullTime{}
		if err := execAllArgs(ctx, conn,
			stmtArgs{fmt.Sprintf(`UPDATE %s SET fingerprint = ?, flushed_batch = 0, last_seq = 0, updated_at = NULL, columns = ? WHERE name = ? AND kind = ?`, tableOutputs), []any{o.fingerprint, string(colsJSON), o.name, o.kind}},
			stmtArgs{fmt.Sprintf(`DELETE FROM %s WHERE output = ?`, tableParts), []any{outputKey(o)}},
		); err != nil {
			return err
		}
	}
	if o.flushedBatch < a.meta.batch || o.lastSeq < a.meta.committedSeq {
		o.pendingSince = time.Now().Add(-o.flushAfter) // due at once
	}
	if a.cfg.builder {
		return nil // its build flushes every output next, manifests included
	}
	var rows int64
	var partitions int
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	rows, partitions, err = countParts(ctx, tx, o)
	_ = tx.Rollback()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	return a.writeManifest(o, rows, partitions, updated.Time)
}

type stmtArgs struct {
	q    string
	args []any
}

func execAllArgs(ctx context.Context, conn *sql.Conn, stmts ...stmtArgs) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s.q, s.args...); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s.q), err)
		}
	}
	return nil
}

// describe returns the columns a query produces.
func describe(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string,
) ([]marts.Column, error) {
	rows, err := q.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []marts.Column
	for rows.Next() {
		var name, typ string
		var rest [4]sql.NullString
		if err := rows.Scan(&name, &typ, &rest[0], &rest[1], &rest[2], &rest[3]); err != nil {
			return nil, err
		}
		cols = append(cols, marts.Column{Name: name, Type: typ})
	}
	return cols, rows.Err()
}

func checkPartitionColumns(mart string, cols []marts.Column, partitionBy []string) error {
	seen := map[string]bool{}
	for _, c := range cols {
		if seen[c.Name] {
			return fmt.Errorf("%w: mart %s: column %s twice (alias it)", ErrBadMart, mart, c.Name)
		}
		seen[c.Name] = true
	}
	for _, p := range partitionBy {
		if !seen[p] {
			return fmt.Errorf("%w: mart %s: partition column %s is not a column of its SELECT", ErrBadMart, mart, p)
		}
	}
	if len(partitionBy) > 0 && len(partitionBy) >= len(cols) {
		return fmt.Errorf("%w: mart %s: every column is a partition column", ErrBadMart, mart)
	}
	return nil
}

func (a *Aggregator) closeDB() error {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	return a.closeConns()
}

// closeConns closes the connections and the database; the caller holds
// ingestMu and flushMu.
func (a *Aggregator) closeConns() error {
	a.openDB.Store(nil)
	var errs []error
	if a.ingestConn != nil {
		errs = append(errs, a.ingestConn.Close())
		a.ingestConn = nil
	}
	if a.flushConn != nil {
		errs = append(errs, a.flushConn.Close())
		a.flushConn = nil
	}
	if a.db != nil {
		errs = append(errs, a.db.Close())
		a.db = nil
	}
	return errors.Join(errs...)
}

// NewBatchHandler builds the handler of an aggregate worker; use it as
// workers.Config.NewBatchHandlerFunc. Handlers share the aggregator, so a
// handler rebuilt after a crash continues where the state is.
func (a *Aggregator) NewBatchHandler() (workers.BatchHandler, error) {
	return batchHandler{a: a}, nil
}

// WorkerConfig fills in cfg what makes it an aggregate worker for the
// aggregator's dataset: step, dataset and batch handler. Unless set, it
// fetches batches of up to 1024 and gathers one for at most 250ms: a
// commit costs about as much as a thousand records, and a key partition's
// worker sees only its share of the stream, so a short wait commits tiny
// batches (20ms cost twice the CPU per record in `jetfleet bench`), while
// the bound keeps a trickle from waiting for a full batch (seconds at a
// few hundred records/s). Unless set, MaxAckPending is four batches.
func (a *Aggregator) WorkerConfig(cfg workers.Config) workers.Config {
	if cfg.FetchBatch <= 0 {
		cfg.FetchBatch = 1024
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 250 * time.Millisecond
	}
	// A batch sink holds a whole batch unacked while it commits; with
	// room for more batches in flight the server delivers the next one
	// meanwhile instead of waiting for the commit's acks.
	if cfg.Consumer.MaxAckPending <= 0 {
		cfg.Consumer.MaxAckPending = 4 * cfg.FetchBatch
	}
	cfg.Step = subjects.StepAggregate
	cfg.Dataset = a.cfg.Dataset.Name
	cfg.NewHandlerFunc = nil
	cfg.NewBatchHandlerFunc = a.NewBatchHandler
	return cfg
}

type batchHandler struct{ a *Aggregator }

// HandleBatch commits the batch's new records to the state; its nil error
// (and so the ack) comes only after the commit.
func (h batchHandler) HandleBatch(ctx context.Context, batch []workers.Record) ([]workers.Reject, error) {
	return h.a.handleBatch(ctx, batch)
}

func (a *Aggregator) handleBatch(ctx context.Context, batch []workers.Record) ([]workers.Reject, error) {
	rows, rejected, maxSeq := a.decode(batch)
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	if a.ingestConn == nil {
		return nil, ErrNotStarted
	}
	res, err := a.ingest(ctx, a.ingestConn, rows, maxSeq, a.meta)
	if err != nil {
		// The transaction rolled back; reload the counter to be sure.
		if m, rerr := readMeta(context.WithoutCancel(ctx), a.ingestConn); rerr == nil {
			a.meta = m
		}
		if isStorageErr(err) {
			return nil, a.storageFailed(err)
		}
		return nil, err
	}
	a.storageWorked()
	a.meta = res.meta
	a.commitsSinceOpen.Add(1)
	if a.cfg.Committed != nil {
		a.cfg.Committed(batch)
	}
	if a.hooks.afterCommit != nil {
		if err := a.hooks.afterCommit(); err != nil {
			return nil, err
		}
	}
	a.notePending(res.inserted)
	a.writeProgress()
	return rejected, nil
}

func (a *Aggregator) writeProgress() {
	if a.cfg.builder {
		return // the builder writes the dataset's from the partitions'
	}
	if a.cfg.Partition != nil {
		a.writePartitionProgress(func(p *marts.PartitionProgress) {
			p.CommittedSeq, p.Records, p.Duplicates = a.meta.committedSeq, a.meta.records, a.meta.duplicates
		})
		return
	}
	p := marts.Progress{
		Dataset: a.cfg.Dataset.Name, CommittedSeq: a.meta.committedSeq, Records: a.meta.records,
		Duplicates: a.meta.duplicates, UpdatedAt: time.Now().UTC(),
	}
	if err := marts.WriteProgress(a.cfg.DataDir, p); err != nil {
		a.log.Warn().Err(err).Msg("write progress file")
	}
}

func (a *Aggregator) notePending(inserted int64) {
	now := time.Now()
	due := false
	a.pendMu.Lock()
	for _, o := range a.outputs {
		if o.pendingSince.IsZero() {
			o.pendingSince = now
		}
		o.pendingRecords += inserted
		if o.pendingRecords >= int64(o.flushEvery) {
			due = true
		}
	}
	a.pendMu.Unlock()
	if due {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// Stats are the aggregator's counters.
type Stats struct {
	// Records are distinct records in the state; Duplicates were dropped.
	Records, Duplicates int64
	// CommittedSeq is the highest stream sequence committed.
	CommittedSeq uint64
	// FlushedSeq is the lowest sequence every output has folded in.
	FlushedSeq uint64
	// LastFlushError is the last flush's error, nil when it succeeded.
	LastFlushError error
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() Stats {
	a.ingestMu.Lock()
	m := a.meta
	a.ingestMu.Unlock()
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	s := Stats{Records: m.records, Duplicates: m.duplicates, CommittedSeq: m.committedSeq, LastFlushError: a.flushErr}
	for i, o := range a.outputs {
		if i == 0 || o.lastSeq < s.FlushedSeq {
			s.FlushedSeq = o.lastSeq
		}
	}
	return s
}

// Flush folds everything committed so far into the marts and lake now.
func (a *Aggregator) Flush(ctx context.Context) error {
	return a.flushAll(ctx, true)
}

// flusher flushes each output when it is due: FlushRecords pending, or
// FlushInterval after its first pending record.
func (a *Aggregator) flusher(ctx context.Context) {
	tick := time.Second
	for _, o := range a.outputs {
		tick = min(tick, o.flushAfter/4)
	}
	tick = max(tick, 5*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	fails, next := 0, time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.kick:
		}
		now := time.Now()
		if a.probeStorage(now) || now.Before(next) {
			continue // a flush would fail the same way; retry with backoff
		}
		if a.recycleDue() {
			if err := a.recycle(context.WithoutCancel(ctx)); err != nil {
				// Intake waits, as for a full disk, and the probe's
				// backoff paces the next try.
				_ = a.storageFailed(err)
				continue
			}
		}
		// A flush under way when Stop cancels ctx runs to its end: cancelling
		// it mid-transaction would leave the rollback racing the final
		// flush's BeginTx on the same connection ("multiple transactions").
		err := a.flushAll(context.WithoutCancel(ctx), false)
		switch {
		case err == nil:
			fails = 0
		case ctx.Err() == nil:
			fails++
			delay := backoff(storageRetryMin, storageRetryMax, fails)
			next = now.Add(delay)
			a.log.Error().Err(err).Dur("retry_in", delay).Msg("flush failed; the state keeps the records, retrying")
		}
	}
}

func (a *Aggregator) flushAll(ctx context.Context, force bool) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	if a.flushConn == nil {
		return ErrNotStarted
	}
	var errs []error
	now := time.Now()
	for _, o := range a.outputs {
		a.pendMu.Lock()
		records, since := o.pendingRecords, o.pendingSince
		due := !since.IsZero() && (force || records >= int64(o.flushEvery) || now.Sub(since) >= o.flushAfter)
		if due {
			o.pendingRecords, o.pendingSince = 0, time.Time{}
		}
		a.pendMu.Unlock()
		if !due {
			continue
		}
		if err := a.flushOutput(ctx, a.flushConn, o); err != nil {
			errs = append(errs, fmt.Errorf("flush %s %s: %w", o.kind, o.name, err))
			a.pendMu.Lock()
			o.pendingRecords += records
			if o.pendingSince.IsZero() || since.Before(o.pendingSince) {
				o.pendingSince = since
			}
			a.pendMu.Unlock()
		}
	}
	a.flushErr = errors.Join(errs...)
	return a.flushErr
}
