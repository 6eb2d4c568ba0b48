package aggregate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
)

// MartBuilderConfig configures a [MartBuilder].
type MartBuilderConfig struct {
	// DataDir holds state/, marts/ and lake/; every replica of the dataset's
	// aggregator shares it. Required.
	DataDir string
	// Dataset and its Marts (marts of other datasets are ignored). Required.
	Dataset DatasetConfig
	Marts   []Mart
	// Partitions is the clean stage's partition count. Required.
	Partitions int
	// MemoryLimit and Threads of the builder's DuckDB state. Default 1GB
	// and DuckDB's thread count. The state spills to disk beyond the
	// limit, so the builder's memory stays within it however large the
	// lake grows.
	MemoryLimit string
	Threads     int
	// Interval is the least time between two builds; cues in between are
	// folded into the next one. Default 1s. A build that took long waits
	// twice its time before the next, so builds take at most a third of
	// the time.
	Interval time.Duration
	// FlushedFunc, if set, is called after a build rewrote partitions of
	// mart name (kind marts.KindMart) or ingested new lake files
	// (marts.KindLake), as Config.FlushedFunc is after an aggregator's
	// flush. It must not block.
	FlushedFunc func(kind, name string)
	Logger      zerolog.Logger
}

// MartBuilder builds a partitioned dataset's marts from its partitions'
// lake files. A mart aggregates across keys, so no partition can compute
// it alone; the lake holds exactly the de-duplicated records of every
// partition (each partition's aggregator writes its own files), so a mart
// computed over all of them equals one aggregator's.
//
// The builder has a DuckDB state of its own, state/<dataset>.marts.duckdb:
// the lake's rows, the lake files they came from (path, size, mtime), and
// the marts' flush positions. It is an unpartitioned aggregator's state
// fed with lake files instead of messages. A build lists the lake and
// ingests, as one new batch in one transaction, the files that are new or
// were rewritten (a partition's flush redone after a crash rewrites its
// file with a superset of its rows); then it flushes each mart the way the
// aggregator does: only the mart partitions that the batch's rows touch
// are recomputed and rewritten (an unpartitioned mart whole), and a mart
// whose SQL changed starts over. A build's cost follows the new files, not
// the lake. Like the aggregator's, a recompute does not reach a mart
// partition the new rows do not fall in (a window crossing midnight).
// When lake files the state holds have disappeared, their rows are dropped
// and every mart is recomputed whole, removing partitions that have no rows
// any more. A data dir without the state (an older builder's) is read
// whole into it on the first build.
//
// A build holds an exclusive flock on marts/.<dataset>.build.lock and has
// the state open only while it holds it, so builders of several processes
// sharing the data dir take turns on the one state (DuckDB lets one
// process open a file), and each build sees every lake file renamed into
// place before it started. A mart partition is replaced atomically (write
// aside, rename) and the state records a flush only after its files are in
// place, so the next build finishes one that crashed. Each build then
// writes the lake's manifest and the dataset's progress file. Its methods
// are safe for concurrent use.
type MartBuilder struct {
	cfg MartBuilderConfig
	log zerolog.Logger
	// agg is the builder's state: an aggregator whose batches are lake
	// files, opened for each build.
	agg *Aggregator
	// lake describes the lake in its manifest; the partitions write the
	// files, the builder the manifest.
	lake *output
	kick chan struct{}

	buildMu sync.Mutex
	lastSig string

	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	done    chan struct{}
	stopOne sync.Once
	stopped chan struct{}
	stopErr error
}

// NewMartBuilder checks cfg and builds a builder. It does no I/O.
func NewMartBuilder(cfg MartBuilderConfig) (*MartBuilder, error) {
	if cfg.Partitions < 1 || cfg.Partitions > subjects.MaxPartitions {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidConfig, cfg.Partitions)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	log := cfg.Logger.With().Str("role", "mart-builder").Logger()
	agg, err := New(Config{
		DataDir: cfg.DataDir, Dataset: cfg.Dataset, Marts: cfg.Marts, NoLake: true,
		MemoryLimit: cfg.MemoryLimit, Threads: cfg.Threads, Logger: log,
		FlushedFunc: cfg.FlushedFunc, builder: true,
	})
	if err != nil {
		return nil, err
	}
	return &MartBuilder{
		cfg:     cfg,
		log:     agg.log,
		agg:     agg,
		lake:    lakeOutput(cfg.DataDir, cfg.Dataset),
		kick:    make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}, nil
}

// Kick asks for a build soon; it never blocks. Use it as a partition's
// LakeFlushedFunc.
func (b *MartBuilder) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Start builds in the background after each Kick, at most once per
// Interval.
func (b *MartBuilder) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return fmt.Errorf("%w: mart builder of %s already started", ErrInvalidConfig, b.cfg.Dataset.Name)
	}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		b.loop(runCtx)
	}()
	return nil
}

func (b *MartBuilder) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		began := time.Now()
		if err := b.Build(ctx); err != nil && ctx.Err() == nil {
			b.log.Error().Err(err).Msg("mart build failed; the next cue retries")
			b.Kick()
		}
		t := time.NewTimer(max(b.cfg.Interval, 2*time.Since(began)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Stop ends the background builds and runs a last one, so the marts hold
// everything the partitions flushed before. Stop the partitions' workers
// and aggregators first. Stop is idempotent and safe without Start.
func (b *MartBuilder) Stop(ctx context.Context) error {
	b.stopOne.Do(func() {
		defer close(b.stopped)
		b.mu.Lock()
		cancel, done := b.cancel, b.done
		b.mu.Unlock()
		if cancel == nil {
			return
		}
		cancel(ErrStopped)
		<-done
		b.stopErr = b.Build(ctx)
	})
	select {
	case <-b.stopped:
		return b.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopped is closed once Stop has finished.
func (b *MartBuilder) Stopped() <-chan struct{} { return b.stopped }

// Build brings every mart of the dataset up to the lake now, unless the
// lake and the partitions' progress are what the last build saw.
func (b *MartBuilder) Build(ctx context.Context) error {
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	ds := b.cfg.Dataset.Name
	martsDir := filepath.Join(b.cfg.DataDir, marts.MartsDir)
	if err := os.MkdirAll(martsDir, 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(ctx, filepath.Join(martsDir, "."+ds+".build.lock"))
	if err != nil {
		return fmt.Errorf("lock mart build of %s: %w", ds, err)
	}
	defer unlock()

	// Progress first: the lake listed after it holds at least what it says.
	progress, err := marts.ReadPartitionProgress(b.cfg.DataDir, ds, b.cfg.Partitions)
	if err != nil {
		return err
	}
	files, sig, err := b.listLake(progress)
	if err != nil {
		return err
	}
	if sig == b.lastSig {
		return nil
	}
	start := time.Now()
	st, err := b.build(ctx, progress, files)
	if err != nil {
		return fmt.Errorf("build marts of %s: %w", ds, err)
	}
	b.lastSig = sig
	b.log.Debug().Int("lake_files", len(files)).Int("new_files", st.added).Int("rewritten_files", st.changed).
		Int("gone_files", st.gone).Int64("batch", st.batch).Dur("took", time.Since(start)).Msg("marts built from the lake")
	return nil
}

// lakeFile is a lake file as listed: its path relative to the lake
// directory (slash separated), and the stamp that tells a rewritten file
// (a flush redone after a crash replaces its file) from the one read
// before.
type lakeFile struct {
	path          string
	size, modTime int64
}

// listLake lists the partitions' lake files with their stamps, and a
// signature of them and of the progress.
func (b *MartBuilder) listLake(progress []marts.PartitionProgress) ([]lakeFile, string, error) {
	dir := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	paths, err := filepath.Glob(filepath.Join(dir, "*", "data-p*.parquet"))
	if err != nil {
		return nil, "", err
	}
	sort.Strings(paths)
	files := make([]lakeFile, 0, len(paths))
	h := sha256.New()
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the glob: gone
		}
		if err != nil {
			return nil, "", err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return nil, "", err
		}
		f := lakeFile{path: filepath.ToSlash(rel), size: fi.Size(), modTime: fi.ModTime().UnixNano()}
		files = append(files, f)
		fmt.Fprintf(h, "%s %d %d\n", f.path, f.size, f.modTime)
	}
	for _, p := range progress {
		fmt.Fprintf(h, "%d %d %d %d %d\n", p.Partition, p.CommittedSeq, p.LakeSeq, p.Records, p.Duplicates)
	}
	return files, hex.EncodeToString(h.Sum(nil)), nil
}

// buildStats is what a build found in the lake.
type buildStats struct {
	// batch is the state's batch the new and rewritten files were
	// ingested as, 0 when there were none.
	batch                int64
	added, changed, gone int
	rows                 int64 // rows of the lake
}

// build opens the state, ingests what is new in the lake, flushes every
// mart, writes the lake's manifest and the dataset's progress, and closes
// the state.
func (b *MartBuilder) build(ctx context.Context, progress []marts.PartitionProgress, files []lakeFile) (st buildStats, err error) {
	a := b.agg
	if err := a.open(ctx); err != nil {
		return st, errors.Join(fmt.Errorf("open %s: %w", a.stateFile(), err), a.closeDB())
	}
	// Closing checkpoints the state and gives it up for the builder that
	// takes the flock next.
	defer func() { err = errors.Join(err, a.closeDB()) }()
	folded, committed := marts.FoldedSeq(progress)
	if st, err = b.ingest(ctx, files, folded); err != nil {
		return st, fmt.Errorf("ingest lake files: %w", err)
	}
	if a.hooks.afterCommit != nil {
		if err := a.hooks.afterCommit(); err != nil {
			return st, err
		}
	}
	var errs []error
	for _, o := range a.outputs {
		// Also when nothing is new: a flush that crashed is finished, and
		// the manifest gets the partitions' new folded sequence.
		if err := a.flushOutput(ctx, a.flushConn, o); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", o.kind, o.name, err))
		}
	}
	now := time.Now().UTC()
	if err := b.lakeManifest(files, st.rows, folded, now); err != nil {
		errs = append(errs, fmt.Errorf("lake manifest: %w", err))
	} else if st.batch > 0 && b.cfg.FlushedFunc != nil {
		b.cfg.FlushedFunc(marts.KindLake, b.cfg.Dataset.Name)
	}
	p := marts.Progress{Dataset: b.cfg.Dataset.Name, CommittedSeq: committed, UpdatedAt: now}
	for _, pp := range progress {
		p.Records += pp.Records
		p.Duplicates += pp.Duplicates
	}
	errs = append(errs, marts.WriteProgress(b.cfg.DataDir, p))
	return st, errors.Join(errs...)
}

// ingestChunk is how many lake files one INSERT reads: the first build of
// a large lake reads it in several statements of one transaction.
const ingestChunk = 1000

// ingest compares the listing with the files the state holds and, if
// files are new, rewritten or gone, commits one batch: rows of rewritten
// and gone files deleted, rows of new and rewritten files inserted with
// the new batch number, the files recorded. A rewritten file holds a
// superset of its old rows, so the mart partitions its new rows touch
// cover those of its old rows; the rows of a gone file touch nothing
// anymore, so its batch sends every mart back to batch 0: a recompute of
// the whole mart. The meta's committed sequence is the partitions' folded
// one, which flushes write into the manifests.
func (b *MartBuilder) ingest(ctx context.Context, files []lakeFile, folded uint64) (buildStats, error) {
	a := b.agg
	conn := a.ingestConn
	var st buildStats
	if err := execAll(ctx, conn, `CREATE OR REPLACE TEMP TABLE _jf_listing (path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL)`); err != nil {
		return st, err
	}
	if err := appendListing(conn, files); err != nil {
		return st, err
	}
	if err := execAll(ctx, conn,
		fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_new AS SELECT l.path, l.size, l.mtime_ns, f.id AS old_id
FROM temp._jf_listing l LEFT JOIN main.%s f ON f.path = l.path
WHERE f.id IS NULL OR f.size <> l.size OR f.mtime_ns <> l.mtime_ns`, tableFiles),
		fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_gone AS SELECT f.id FROM main.%s f
WHERE NOT EXISTS (SELECT 1 FROM temp._jf_listing l WHERE l.path = f.path)`, tableFiles),
	); err != nil {
		return st, err
	}
	if err := conn.QueryRowContext(ctx, `SELECT
  (SELECT count(*) FROM temp._jf_new WHERE old_id IS NULL),
  (SELECT count(*) FROM temp._jf_new WHERE old_id IS NOT NULL),
  (SELECT count(*) FROM temp._jf_gone)`).Scan(&st.added, &st.changed, &st.gone); err != nil {
		return st, err
	}
	m, err := readMeta(ctx, conn)
	if err != nil {
		return st, err
	}
	st.rows = m.records
	if st.added+st.changed+st.gone == 0 {
		if m.committedSeq != folded {
			_, err := conn.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET committed_seq = ?`, tableMeta), folded)
			return st, err
		}
		return st, nil
	}
	var paths []string
	rows, err := conn.QueryContext(ctx, `SELECT path FROM temp._jf_new ORDER BY path`)
	if err != nil {
		return st, err
	}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return st, err
		}
		paths = append(paths, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}

	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return st, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	next := m.batch + 1
	var lastID int64
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT coalesce(max(id), 0) FROM %s`, tableFiles)).Scan(&lastID); err != nil {
		return st, err
	}
	stmts := []stmtArgs{}
	if st.changed+st.gone > 0 {
		old := `SELECT old_id FROM temp._jf_new WHERE old_id IS NOT NULL UNION ALL SELECT id FROM temp._jf_gone`
		stmts = append(stmts,
			stmtArgs{fmt.Sprintf(`DELETE FROM main.%s WHERE _jf_file IN (%s)`, tableRecords, old), nil},
			stmtArgs{fmt.Sprintf(`DELETE FROM main.%s WHERE id IN (%s)`, tableFiles, old), nil})
	}
	stmts = append(stmts, stmtArgs{fmt.Sprintf(`INSERT INTO main.%s SELECT ? + row_number() OVER (ORDER BY path), path, size, mtime_ns, ? FROM temp._jf_new`, tableFiles), []any{lastID, next}})
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s.q, s.args...); err != nil {
			return st, fmt.Errorf("%s: %w", firstLine(s.q), err)
		}
	}
	for i := 0; i < len(paths); i += ingestChunk {
		if err := b.insertRows(ctx, tx, paths[i:min(i+ingestChunk, len(paths))], next); err != nil {
			return st, err
		}
	}
	if err := tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(*) FROM main.%s`, tableRecords)).Scan(&st.rows); err != nil {
		return st, err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET batch = ?, committed_seq = ?, records = ?`, tableMeta), next, folded, st.rows); err != nil {
		return st, fmt.Errorf("update meta: %w", err)
	}
	if st.gone > 0 {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET flushed_batch = 0 WHERE kind = ?`, tableOutputs), marts.KindMart); err != nil {
			return st, fmt.Errorf("start marts over: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("commit: %w", err)
	}
	st.batch = next
	if st.gone > 0 {
		for _, o := range a.outputs {
			o.flushedBatch = 0
		}
		b.log.Info().Int("gone_files", st.gone).Msg("lake files disappeared; recomputing every mart whole")
	}
	return st, nil
}

// appendListing loads the listed lake files into the temp table
// _jf_listing.
func appendListing(conn *sql.Conn, files []lakeFile) error {
	if len(files) == 0 {
		return nil
	}
	err := conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppender(dc.(*duckdb.Conn), "temp", "main", "_jf_listing")
		if err != nil {
			return err
		}
		for _, f := range files {
			if err := app.AppendRow(f.path, f.size, f.modTime); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close()
	})
	if err != nil {
		return fmt.Errorf("list lake files: %w", err)
	}
	return nil
}

// insertRows inserts the rows of lake files paths (recorded in _jf_files
// with batch) with the schema's types. A schema column none of the files
// has (added to the pipeline since they were written) is NULL.
func (b *MartBuilder) insertRows(ctx context.Context, tx *sql.Tx, paths []string, batch int64) error {
	dir := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name) + string(filepath.Separator)
	lits := make([]string, len(paths))
	for i, p := range paths {
		lits[i] = literal(dir + filepath.FromSlash(p))
	}
	src := fmt.Sprintf(`read_parquet([%s], union_by_name = true, hive_partitioning = false, filename = '_jf_filename')`, strings.Join(lits, ", "))
	have, err := describe(ctx, tx, "SELECT * FROM "+src)
	if err != nil {
		return err
	}
	inFiles := map[string]bool{}
	for _, c := range have {
		inFiles[strings.ToLower(c.Name)] = true
	}
	names := make([]string, 0, len(b.cfg.Dataset.Schema))
	exprs := make([]string, 0, len(b.cfg.Dataset.Schema))
	for _, c := range b.cfg.Dataset.Schema {
		names = append(names, ident(c.Name))
		if inFiles[strings.ToLower(c.Name)] {
			exprs = append(exprs, fmt.Sprintf("CAST(r.%s AS %s)", ident(c.Name), c.Type))
		} else {
			exprs = append(exprs, fmt.Sprintf("CAST(NULL AS %s)", c.Type))
		}
	}
	q := fmt.Sprintf(`INSERT INTO main.%s (%s, _jf_batch, _jf_file)
SELECT %s, $1, f.id FROM %s r
JOIN (SELECT id, $2 || path AS abs FROM main.%s WHERE batch = $1) f ON f.abs = r._jf_filename`,
		tableRecords, strings.Join(names, ", "), strings.Join(exprs, ", "), src, tableFiles)
	if _, err := tx.ExecContext(ctx, q, batch, filepath.ToSlash(dir)); err != nil {
		return fmt.Errorf("read lake files: %w", err)
	}
	return nil
}

// lakeManifest describes the lake the partitions wrote.
func (b *MartBuilder) lakeManifest(files []lakeFile, rows int64, folded uint64, now time.Time) error {
	o := b.lake
	o.lastSeq = folded
	cols := make([]marts.Column, 0, len(b.cfg.Dataset.Schema)+1)
	for _, c := range b.cfg.Dataset.Schema {
		cols = append(cols, marts.Column{Name: c.Name, Type: c.Type})
	}
	o.columns = append(cols, marts.Column{Name: o.partitionBy[0], Type: "DATE"})
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[path.Dir(f.path)] = true
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	return marts.WriteManifest(o.manifest(b.cfg.Dataset.Name, rows, len(dirs), now))
}

// lockFile takes an exclusive flock on path, polling until ctx ends; the
// returned func releases it. The lock is the OS's: it goes with the
// process, so a crashed builder never leaves it held.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
