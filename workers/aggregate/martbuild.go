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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

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
	// MemoryLimit and Threads of the DuckDB a build runs in. Default 1GB
	// and DuckDB's thread count.
	MemoryLimit string
	Threads     int
	// Interval is the least time between two builds; cues in between are
	// folded into the next one. Default 1s. A build that took long waits
	// twice its time before the next, so builds take at most a third of
	// the time whatever the lake's size.
	Interval time.Duration
	// FlushedFunc, if set, is called after a build replaced mart name (kind
	// marts.KindMart) or described the lake (marts.KindLake), as
	// Config.FlushedFunc is after an aggregator's flush. It must not block.
	FlushedFunc func(kind, name string)
	Logger      zerolog.Logger
}

// MartBuilder builds a partitioned dataset's marts from the union of its
// partitions' lake files. A mart aggregates across keys, so no partition
// can compute it alone; the lake holds exactly the de-duplicated records
// of every partition (each partition's aggregator writes its own files),
// so a mart computed over all of them equals one aggregator's.
//
// A build holds an exclusive flock on marts/.<dataset>.build.lock, so
// builders of several processes sharing the data dir take turns and each
// build sees every lake file renamed into place before it started. A
// build replaces each mart partition atomically (write aside, rename) and
// removes partitions that no longer have rows, then writes the manifests
// and the dataset's progress file. Its methods are safe for concurrent
// use.
type MartBuilder struct {
	cfg  MartBuilderConfig
	log  zerolog.Logger
	agg  *Aggregator // the outputs and file writing of a plain aggregator
	kick chan struct{}

	buildMu sync.Mutex
	lastSig string
	// mem is the builder's DuckDB, kept between builds; it holds no data,
	// only a view over the lake files.
	mem *sql.DB

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
	agg, err := New(Config{
		DataDir: cfg.DataDir, Dataset: cfg.Dataset, Marts: cfg.Marts,
		MemoryLimit: cfg.MemoryLimit, Threads: cfg.Threads, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	return &MartBuilder{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", cfg.Dataset.Name).Str("role", "mart-builder").Logger(),
		agg:     agg,
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
		b.buildMu.Lock()
		b.closeMem()
		b.buildMu.Unlock()
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

// Build builds every mart of the dataset from the lake now, unless the
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
	files, stamps, sig, err := b.lakeFiles(progress)
	if err != nil {
		return err
	}
	if sig == b.lastSig {
		return nil
	}
	start := time.Now()
	if err := b.build(ctx, progress, files, stamps); err != nil {
		b.closeMem() // start over from the whole lake next time
		return err
	}
	b.lastSig = sig
	b.log.Debug().Int("lake_files", len(files)).Dur("took", time.Since(start)).Msg("marts built from the lake")
	return nil
}

// fileStamp tells a rewritten lake file (a flush redone after a crash
// replaces its file) from the one read before.
type fileStamp struct {
	size    int64
	modTime int64
}

// lakeFiles lists the partitions' lake files with their stamps, and a
// signature of them and of the progress.
func (b *MartBuilder) lakeFiles(progress []marts.PartitionProgress) ([]string, map[string]fileStamp, string, error) {
	dir := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	files, err := filepath.Glob(filepath.Join(dir, "*", "data-p*.parquet"))
	if err != nil {
		return nil, nil, "", err
	}
	sort.Strings(files)
	stamps := make(map[string]fileStamp, len(files))
	h := sha256.New()
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return nil, nil, "", err
		}
		st := fileStamp{size: fi.Size(), modTime: fi.ModTime().UnixNano()}
		stamps[f] = st
		fmt.Fprintf(h, "%s %d %d\n", f, st.size, st.modTime)
	}
	for _, p := range progress {
		fmt.Fprintf(h, "%d %d %d %d %d\n", p.Partition, p.CommittedSeq, p.LakeSeq, p.Records, p.Duplicates)
	}
	return files, stamps, hex.EncodeToString(h.Sum(nil)), nil
}

func (b *MartBuilder) closeMem() {
	if b.mem != nil {
		_ = b.mem.Close()
		b.mem = nil
	}
}

// syncLake points the view named after the dataset at the lake files
// listed, with the schema's columns. Builds read the files where they are:
// DuckDB streams them within its memory limit, so the builder's memory
// does not grow with the dataset (a copy of the lake would).
func (b *MartBuilder) syncLake(ctx context.Context, stamps map[string]fileStamp) (*sql.Conn, error) {
	ds := b.cfg.Dataset
	if b.mem == nil {
		settings := map[string]string{
			"memory_limit":   b.agg.cfg.MemoryLimit,
			"temp_directory": filepath.Join(b.cfg.DataDir, "state", "."+ds.Name+".builder.tmp"),
		}
		if b.cfg.Threads > 0 {
			settings["threads"] = fmt.Sprint(b.cfg.Threads)
		}
		db, err := openDuckDB("", settings)
		if err != nil {
			return nil, err
		}
		b.mem = db
	}
	conn, err := b.mem.Conn(ctx)
	if err != nil {
		return nil, err
	}
	cols := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		if len(stamps) == 0 {
			cols[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, ident(c.Name))
		} else {
			cols[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", ident(c.Name), c.Type, ident(c.Name))
		}
	}
	from := " WHERE false" // no lake yet: an empty relation of the right shape
	if len(stamps) > 0 {
		files := make([]string, 0, len(stamps))
		for f := range stamps {
			files = append(files, literal(f))
		}
		sort.Strings(files)
		from = fmt.Sprintf(" FROM read_parquet([%s], union_by_name = true, hive_partitioning = false)", strings.Join(files, ", "))
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT %s%s", ident(ds.Name), strings.Join(cols, ", "), from)); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

func (b *MartBuilder) build(ctx context.Context, progress []marts.PartitionProgress, files []string, stamps map[string]fileStamp) error {
	conn, err := b.syncLake(ctx, stamps)
	if err != nil {
		return fmt.Errorf("read the lake of %s: %w", b.cfg.Dataset.Name, err)
	}
	defer conn.Close()
	folded, committed := marts.FoldedSeq(progress)
	now := time.Now().UTC()
	var errs []error
	for _, o := range b.agg.outputs {
		o.lastSeq = folded
		var err error
		if o.kind == marts.KindLake {
			err = b.lakeManifest(ctx, conn, o, files, now)
		} else {
			err = b.buildMart(ctx, conn, o, now)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", o.kind, o.name, err))
			continue
		}
		if b.cfg.FlushedFunc != nil {
			b.cfg.FlushedFunc(o.kind, o.name)
		}
	}
	p := marts.Progress{Dataset: b.cfg.Dataset.Name, CommittedSeq: committed, UpdatedAt: now}
	for _, pp := range progress {
		p.Records += pp.Records
		p.Duplicates += pp.Duplicates
	}
	errs = append(errs, marts.WriteProgress(b.cfg.DataDir, p))
	return errors.Join(errs...)
}

func (b *MartBuilder) buildMart(ctx context.Context, conn *sql.Conn, o *output, now time.Time) error {
	cols, err := describe(ctx, conn, o.sql)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadMart, err)
	}
	if err := checkPartitionColumns(o.name, cols, o.partitionBy); err != nil {
		return err
	}
	o.columns = cols
	if err := removeTemp(o.dir, marts.TempPrefix); err != nil { // builders take turns
		return err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only but for temp tables
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_out AS %s`, o.sql)); err != nil {
		return err
	}
	var parts []part
	if len(o.partitionBy) == 0 {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM _jf_out`).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			// No rows: no file (writeParts would remove the mart's directory).
			if err := os.Remove(filepath.Join(o.dir, marts.DataFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		} else {
			parts = []part{{dir: marts.DataFile, rows: n}}
		}
	} else {
		counted, err := partitionValues(ctx, tx, o.partitionBy, "_jf_out", true)
		if err != nil {
			return err
		}
		keep := map[string]bool{}
		for _, vals := range counted {
			var rows int64
			fmt.Sscan(*vals[len(vals)-1], &rows)
			vals = vals[:len(vals)-1]
			dir := filepath.ToSlash(filepath.Join(marts.PartitionDir(o.partitionBy, vals), marts.DataFile))
			keep[dir] = true
			parts = append(parts, part{dir: dir, values: vals, rows: rows})
		}
		stale, err := partitionFiles(o.dir)
		if err != nil {
			return err
		}
		for _, dir := range stale {
			if !keep[dir] {
				parts = append(parts, part{dir: dir}) // no rows any more: removed
			}
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	if err := b.agg.writeParts(ctx, tx, o, parts); err != nil {
		return err
	}
	var rows int64
	dirs := 0
	for _, p := range parts {
		if p.rows > 0 {
			rows += p.rows
			dirs++
		}
	}
	return marts.WriteManifest(o.manifest(b.cfg.Dataset.Name, rows, dirs, now))
}

// partitionFiles lists the data files of a mart's partitions, relative to
// its directory.
func partitionFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == marts.DataFile && path != filepath.Join(dir, marts.DataFile) {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return out, err
}

// lakeManifest describes the lake the partitions wrote.
func (b *MartBuilder) lakeManifest(ctx context.Context, conn *sql.Conn, o *output, files []string, now time.Time) error {
	var rows int64
	if err := conn.QueryRowContext(ctx, fmt.Sprintf("SELECT count(*) FROM %s", ident(b.cfg.Dataset.Name))).Scan(&rows); err != nil {
		return err
	}
	cols := make([]marts.Column, 0, len(b.cfg.Dataset.Schema)+1)
	for _, c := range b.cfg.Dataset.Schema {
		cols = append(cols, marts.Column{Name: c.Name, Type: c.Type})
	}
	o.columns = append(cols, marts.Column{Name: o.partitionBy[0], Type: "DATE"})
	dirs := map[string]bool{}
	for _, f := range files {
		dirs[filepath.Dir(f)] = true
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
