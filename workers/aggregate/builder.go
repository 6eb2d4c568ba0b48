package aggregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/marts"
)

// Querier runs SQL; the builder hands one to MartBuilderConfig.FlushedFunc.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// MartBuilderConfig configures a [MartBuilder].
type MartBuilderConfig struct {
	// Engine holds the builder's tables. Required.
	Engine *Engine
	// DataDir holds state/, lake/ and marts/. Required.
	DataDir string
	// Dataset and its Marts (marts of other datasets are ignored). Required.
	Dataset DatasetConfig
	Marts   []Mart
	// FlushRecords and FlushInterval are the marts' default flush policy:
	// a mart is written once this many records reached it since its last
	// write, or this long after the first of them. Default 50000, 1s.
	FlushRecords  int
	FlushInterval time.Duration
	// Interval is how often the builder looks for lake flushes of other
	// replicas and for marts due. Default 1s; flushes of its own process
	// wake it at once.
	Interval time.Duration
	// CheckpointInterval is how often it checkpoints (and trims the lake's
	// log). Default 1m.
	CheckpointInterval time.Duration
	// Compression is the marts' default Parquet codec (snappy, zstd, gzip,
	// lz4, brotli, uncompressed). Default snappy: the fastest to write here
	// and the one every Parquet reader decodes without a plugin.
	Compression string
	// FlushedFunc, if set, is called after each write of a mart, on the
	// connection that wrote it: there every mart of the dataset is a view
	// by its name, and the dataset's lake is a view named like the
	// dataset (or <dataset>_lake when a mart has that name), as `jetfleet
	// query` shows them. Mart alert rules run here. It must be quick.
	FlushedFunc func(ctx context.Context, q Querier, m marts.Manifest)
	Logger      zerolog.Logger
}

// Compressions are the Parquet codecs a mart can be written with.
var Compressions = []string{"snappy", "zstd", "gzip", "lz4", "brotli", "uncompressed"}

func (c *MartBuilderConfig) setDefaults() {
	if c.FlushRecords <= 0 {
		c.FlushRecords = 50000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = time.Minute
	}
	if c.Compression == "" {
		c.Compression = "snappy"
	}
}

func (c *MartBuilderConfig) validate() error {
	if c.Engine == nil {
		return fmt.Errorf("%w: mart builder without an engine", ErrInvalidConfig)
	}
	if c.DataDir == "" {
		return fmt.Errorf("%w: no data dir", ErrInvalidConfig)
	}
	if err := validateDataset(c.Dataset); err != nil {
		return err
	}
	if !slices.Contains(Compressions, strings.ToLower(c.Compression)) {
		return fmt.Errorf("%w: compression %q (use %s)", ErrInvalidConfig, c.Compression, strings.Join(Compressions, ", "))
	}
	return validateMarts(c.Dataset.Name, c.Marts)
}

// MartBuilder keeps a dataset's marts from its lake. It follows the lake's
// log and folds each lake flush's rows into the marts: an incremental mart
// (a decomposable aggregation, incremental.go) merges them into its partial
// aggregates, any other mart recomputes the partitions they touch from the
// lake. A mart is written when its flush policy says so, only the
// partitions touched since its last write, each replaced atomically (written
// aside, synced, renamed). The lake holds exactly the de-duplicated records
// of every partition, so the marts equal one batch query over them.
//
// One builder of a dataset works at a time: the one holding the build lock
// (marts/.<dataset>.build.lock), for as long as its process runs; the
// builders of other replicas wait for the lock. The holder checkpoints its
// state now and then, so a builder taking over (or restarting) replays only
// the log after the checkpoint. Its methods are safe for concurrent use.
type MartBuilder struct {
	startstop.Service
	cfg  MartBuilderConfig
	log  zerolog.Logger
	kick chan struct{}

	offerMu sync.Mutex
	holding bool
	offered map[string]string // "owner/n" -> engine table of a lake flush's rows

	// buildMu guards the state below: the build goroutine's and Build's.
	buildMu    sync.Mutex
	unlockFunc func()
	conn       *sql.Conn
	cp         builderCheckpoint // the state, in the checkpoint's shape
	saved      builderCheckpoint // the last checkpoint written
	savedAt    time.Time
	marts      []*martState
	progress   []marts.PartitionProgress
	// owner and compactN name the builder's compactions in the lake's log.
	owner    string
	compactN uint64
	manifest string // the lake manifest last written, to skip unchanged ones
}

const lakeFilesTable = "_jf_lake_files"

// NewMartBuilder checks cfg. It does no I/O.
func NewMartBuilder(cfg MartBuilderConfig) (*MartBuilder, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	b := &MartBuilder{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("step", "aggregate").Str("dataset", cfg.Dataset.Name).Str("role", "mart-builder").Logger(),
		kick:    make(chan struct{}, 1),
		offered: map[string]string{},
	}
	i := 0
	for _, m := range cfg.Marts {
		if m.Dataset == cfg.Dataset.Name {
			ms := newMartState(cfg.DataDir, m, int64(cfg.FlushRecords), cfg.FlushInterval, i)
			if ms.compression == "" {
				ms.compression = strings.ToLower(cfg.Compression)
			}
			b.marts = append(b.marts, ms)
			i++
		}
	}
	return b, nil
}

// Kick asks for a build soon; it never blocks.
func (b *MartBuilder) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// offer hands the builder the engine table holding lake flush e's rows; it
// reports whether the builder took it (and will drop it).
func (b *MartBuilder) offer(e lakeEntry, table string) bool {
	b.offerMu.Lock()
	defer b.offerMu.Unlock()
	if !b.holding {
		return false
	}
	b.offered[e.Owner+"/"+strconv.FormatUint(e.N, 10)] = table
	b.Kick()
	return true
}

func (b *MartBuilder) takeOffer(owner string, n uint64) string {
	b.offerMu.Lock()
	defer b.offerMu.Unlock()
	key := owner + "/" + strconv.FormatUint(n, 10)
	t := b.offered[key]
	delete(b.offered, key)
	return t
}

// Start builds in the background.
func (b *MartBuilder) Start(ctx context.Context) error {
	runCtx, err := b.Begin(ctx)
	if err != nil {
		return fmt.Errorf("%w: mart builder of %s: %w", ErrInvalidConfig, b.cfg.Dataset.Name, err)
	}
	go func() {
		defer b.Finished()
		b.loop(runCtx)
	}()
	return nil
}

// Stop ends the background builds and, if this builder holds the build
// (or can take it), folds in what the lake's log holds, writes every mart
// with pending records, checkpoints and lets the lock go. Stop the intake first, so the
// marts end with its last flush.
func (b *MartBuilder) Stop(ctx context.Context) error {
	if err := b.Service.Stop(ctx); err != nil {
		return err
	}
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if b.unlockFunc == nil {
		// It never took the build: take it now if no one holds it, so a
		// short run's last flushes reach the marts.
		if locked, err := b.acquire(ctx); err != nil || !locked {
			return err
		}
	}
	err := b.build(ctx, true)
	if err == nil {
		err = b.checkpoint(ctx)
	}
	return errors.Join(err, b.release())
}

func (b *MartBuilder) release() error {
	b.offerMu.Lock()
	b.holding = false
	offered := b.offered
	b.offered = map[string]string{}
	b.offerMu.Unlock()
	var err error
	if b.conn != nil {
		for _, t := range offered {
			_, _ = b.conn.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+t)
		}
		for _, ms := range b.marts {
			_, _ = b.conn.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+ms.partials)
		}
		err = b.conn.Close()
		b.conn = nil
	}
	if b.unlockFunc != nil {
		b.unlockFunc()
		b.unlockFunc = nil
	}
	return err
}

func (b *MartBuilder) loop(ctx context.Context) {
	tick := b.cfg.Interval
	for _, ms := range b.marts {
		tick = min(tick, max(ms.flushAfter/4, 50*time.Millisecond))
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	fails := 0
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		case <-t.C:
		}
		if time.Now().Before(next) {
			continue
		}
		if err := b.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			fails++
			delay := backoff(storageRetryMin, storageRetryMax, fails)
			next = time.Now().Add(delay)
			b.log.Error().Err(err).Dur("retry_in", delay).Msg("mart build failed; retrying")
			continue
		}
		fails = 0
	}
}

// Build takes the build lock (waiting for another builder to let it go,
// until ctx ends), folds in every lake flush and writes every mart with
// pending records now. Start need not have run: tests and tools build
// with it.
func (b *MartBuilder) Build(ctx context.Context) error {
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	for b.unlockFunc == nil {
		locked, err := b.acquire(ctx)
		if err != nil {
			return err
		}
		if locked {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return b.build(ctx, true)
}

// step takes the build lock if it can, then builds.
func (b *MartBuilder) step(ctx context.Context) error {
	b.buildMu.Lock()
	defer b.buildMu.Unlock()
	if b.unlockFunc == nil {
		locked, err := b.acquire(ctx)
		if err != nil || !locked {
			return err
		}
	}
	if err := b.build(ctx, false); err != nil {
		return err
	}
	if time.Since(b.savedAt) >= b.cfg.CheckpointInterval {
		if err := b.checkpoint(ctx); err != nil {
			return err
		}
		return b.compact(ctx)
	}
	return nil
}

// acquire takes the build lock, opens a connection and restores the state
// from the checkpoint; marts whose definition changed (or that are new) are
// recomputed from the whole lake once the log is replayed.
func (b *MartBuilder) acquire(ctx context.Context) (bool, error) {
	ds := b.cfg.Dataset.Name
	dir := filepath.Join(b.cfg.DataDir, marts.MartsDir)
	if err := mkdirAll(dir, builderDir(b.cfg.DataDir, ds)); err != nil {
		return false, err
	}
	unlock, err := tryLockFile(filepath.Join(dir, "."+ds+".build.lock"))
	if errors.Is(err, ErrLocked) {
		return false, nil // another replica builds
	}
	if err != nil {
		return false, err
	}
	b.unlockFunc = unlock
	if err := b.restore(ctx); err != nil {
		_ = b.release()
		return false, err
	}
	b.offerMu.Lock()
	b.holding = true
	b.offerMu.Unlock()
	return true, nil
}

func (b *MartBuilder) restore(ctx context.Context) error {
	start := time.Now()
	conn, err := b.cfg.Engine.conn(ctx)
	if err != nil {
		return err
	}
	b.conn = conn
	if err := b.resolveCompaction(); err != nil {
		return fmt.Errorf("resume lake compaction: %w", err)
	}
	cp, err := readCheckpoint(b.cfg.DataDir, b.cfg.Dataset.Name)
	if err != nil {
		return err
	}
	if err := execAll(ctx, conn, fmt.Sprintf("CREATE OR REPLACE TABLE %s (path VARCHAR NOT NULL)", lakeFilesTable)); err != nil {
		return err
	}
	if err := b.bindDataset(ctx, emptyRows(b.cfg.Dataset)); err != nil {
		return err
	}
	keep := map[*martState]bool{}
	for _, ms := range b.marts {
		if err := b.prepareMart(ctx, ms); err != nil {
			return err
		}
		mc, ok := cp.Marts[ms.name]
		switch {
		case !ok:
			b.log.Info().Str("mart", ms.name).Msg("new mart: computing it from the lake")
			ms.rebuild = true
		case mc.Fingerprint != ms.fingerprint:
			b.log.Info().Str("mart", ms.name).Int64("lake_rows", cp.LakeRows).Msg("mart definition changed: rebuilding it from the lake")
			ms.rebuild, ms.rebuildSince = true, time.Now()
			b.markRebuilding(ms, "definition changed")
		default:
			if old, err := marts.ReadManifest(ms.dir); err == nil && old.RebuiltAt != nil {
				ms.rebuiltAt = *old.RebuiltAt
			}
			keep[ms] = true
			ms.parts, ms.updatedAt, ms.lastSeq = mc.Parts, mc.UpdatedAt, mc.LastSeq
			if ms.parts == nil {
				ms.parts = map[string]int64{}
			}
		}
	}
	if cp.Gen > 0 {
		if err := b.loadCheckpoint(ctx, conn, cp, func(ms *martState) bool { return keep[ms] }); err != nil {
			return err
		}
	}
	b.saved, b.savedAt = cp, time.Now()
	b.cp = cp
	b.cp.Processed, b.cp.Folded, b.cp.Months = maps(cp.Processed), maps(cp.Folded), slices.Clone(cp.Months)
	// The log after the checkpoint is folded into the kept marts at the
	// next build; the others are computed from the whole lake after it.
	b.log.Info().Int("lake_files", b.lakeFileCount(ctx)).Int64("lake_rows", b.cp.LakeRows).Dur("took", time.Since(start)).Msg("mart builder took over the build")
	// Rules see every written mart once more: a write whose alerts a crash
	// interrupted is evaluated again (a rule evaluates each write once).
	if f := b.cfg.FlushedFunc; f != nil {
		if err := b.bindRuleViews(ctx); err != nil {
			return err
		}
		for _, ms := range b.marts {
			if !ms.rebuild && !ms.whole && len(ms.parts) > 0 {
				f(ctx, b.conn, ms.manifest(b.cfg.Dataset.Name))
			}
		}
	}
	return nil
}

// prepareMart learns the mart's columns, plans its incremental upkeep and
// creates its tables.
func (b *MartBuilder) prepareMart(ctx context.Context, ms *martState) error {
	cols, err := describe(ctx, b.conn, ms.sql)
	if err != nil {
		return fmt.Errorf("%w: mart %s: %w", ErrBadMart, ms.name, err)
	}
	if err := checkPartitionColumns(ms.name, cols, ms.partitionBy); err != nil {
		return err
	}
	ms.columns = cols
	schema := make([]incrColumn, len(b.cfg.Dataset.Schema))
	for i, c := range b.cfg.Dataset.Schema {
		schema[i] = incrColumn{Name: c.Name, Type: c.Type}
	}
	plan, reason, err := incrPlanMart(ctx, b.conn, b.cfg.Dataset.Name, schema, ms.sql, ms.partitionBy)
	if err != nil {
		return fmt.Errorf("%w: mart %s: %w", ErrBadMart, ms.name, err)
	}
	ms.plan = plan
	if plan == nil {
		b.log.Debug().Str("mart", ms.name).Str("reason", reason).Msg("mart recomputed from the lake: not incremental")
	} else {
		if err := execAll(ctx, b.conn, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM (%s) LIMIT 0", ms.partials, plan.PartialSQL)); err != nil {
			return fmt.Errorf("mart %s: partials: %w", ms.name, err)
		}
	}
	if len(ms.partitionBy) > 0 {
		cols := make([]string, len(ms.partitionBy))
		for i := range cols {
			cols[i] = fmt.Sprintf("p%d VARCHAR", i)
		}
		if err := execAll(ctx, b.conn, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s (%s)", ms.touched, strings.Join(cols, ", "))); err != nil {
			return err
		}
	}
	return nil
}

// build folds in the lake flushes not folded yet and writes the marts that
// are due (all with pending records when final).
func (b *MartBuilder) build(ctx context.Context, final bool) error {
	if err := b.catchUp(ctx); err != nil {
		return err
	}
	for _, ms := range b.marts {
		if ms.rebuild {
			if err := b.recomputeWhole(ctx, ms); err != nil {
				return err
			}
		}
	}
	now := time.Now()
	folded, _ := marts.FoldedSeq(b.progress, b.foldedByPartition())
	for _, ms := range b.marts {
		switch {
		case ms.due(now) || final && !ms.pendingSince.IsZero():
			if err := b.writeMart(ctx, ms, folded); err != nil {
				return err
			}
		case ms.pendingSince.IsZero() && !ms.whole && ms.lastSeq != folded:
			// Nothing of it is unwritten: it holds what is folded.
			ms.lastSeq = folded
			if err := b.writeManifest(ms); err != nil {
				return err
			}
		}
	}
	return b.writeLakeManifest()
}

func (b *MartBuilder) foldedByPartition() map[int]uint64 {
	return marts.FoldedByPartition(b.cp.Folded)
}

// catchUp folds in every lake flush in the log not folded yet. The
// partitions' progress is read first: every flush it counts is in the log
// by the time the log is read.
func (b *MartBuilder) catchUp(ctx context.Context) error {
	ds := b.cfg.Dataset.Name
	progress, err := marts.ReadAllPartitionProgress(b.cfg.DataDir, ds)
	if err != nil {
		return err
	}
	entries, err := readLakeEntries(b.cfg.DataDir, ds, b.cp.Processed)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		if err := b.fold(ctx, entries); err != nil {
			return err
		}
	}
	for _, p := range progress {
		k := strconv.Itoa(p.Partition)
		if p.LakeSeq > b.cp.Folded[k] {
			b.cp.Folded[k] = p.LakeSeq
		}
	}
	b.progress = progress
	if err := b.writeProgress(progress); err != nil {
		b.log.Warn().Err(err).Msg("write the dataset's progress mirror")
	}
	return nil
}

// fold folds lake flushes' rows into every mart.
func (b *MartBuilder) fold(ctx context.Context, entries []lakeEntry) error {
	start := time.Now()
	var sources, offered []string
	var rows int64
	var files, removed []string
	for _, e := range entries {
		rows += e.Rows
		if len(e.Removed) > 0 {
			// A compaction: the same rows in fewer files.
			removed = append(removed, e.Removed...)
			for _, f := range e.Files {
				files = append(files, f.Path)
			}
			continue
		}
		if t := b.takeOffer(e.Owner, e.N); t != "" {
			offered = append(offered, t)
			sources = append(sources, fmt.Sprintf("SELECT %s FROM %s", schemaColumns(b.cfg.Dataset), t))
		} else if len(e.Files) > 0 {
			src, err := b.lakeSource(ctx, e.Files)
			if err != nil {
				return err
			}
			sources = append(sources, src)
		}
		for _, f := range e.Files {
			files = append(files, f.Path)
		}
	}
	defer func() {
		for _, t := range offered {
			_, _ = b.conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+t)
		}
	}()
	// One transaction: a fold that fails half-way leaves no mart with the
	// rows folded in, so the retry folds them once.
	if err := execAll(ctx, b.conn, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	err := b.foldAll(ctx, sources, files)
	if err == nil && len(removed) > 0 {
		err = b.removeLakeFiles(ctx, removed)
	}
	if err == nil {
		err = execAll(ctx, b.conn, "COMMIT")
	}
	if err != nil {
		_, _ = b.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	now := time.Now()
	for _, ms := range b.marts {
		if !ms.rebuild && len(sources) > 0 {
			ms.note(rows, now)
		}
	}
	for _, e := range entries {
		b.cp.Processed[e.Owner] = max(b.cp.Processed[e.Owner], e.N)
		b.cp.LakeRows += e.Rows
		for p, seq := range e.Partitions {
			b.cp.Folded[p] = max(b.cp.Folded[p], seq)
		}
	}
	b.log.Debug().Int("flushes", len(entries)).Int64("rows", rows).Dur("took", time.Since(start)).Msg("lake flushes folded into the marts")
	return nil
}

// foldAll folds sources (the rows of lake flushes) into every mart and
// records the flushes' files.
func (b *MartBuilder) foldAll(ctx context.Context, sources, files []string) error {
	if len(sources) > 0 {
		if err := b.bindDataset(ctx, strings.Join(sources, " UNION ALL BY NAME ")); err != nil {
			return err
		}
		for _, ms := range b.marts {
			if ms.rebuild {
				continue // computed from the whole lake after this
			}
			if err := b.foldMart(ctx, ms); err != nil {
				return err
			}
		}
	}
	return b.addLakeFiles(ctx, files)
}

// foldMart folds the rows bound to the dataset's name into ms: an
// incremental mart merges their partial aggregates into its own, any
// other notes the partitions they touch.
func (b *MartBuilder) foldMart(ctx context.Context, ms *martState) error {
	if ms.plan == nil {
		if len(ms.partitionBy) == 0 {
			return nil // recomputed whole at its write
		}
		return execAll(ctx, b.conn, fmt.Sprintf("INSERT INTO %s SELECT DISTINCT %s FROM (%s) _jf_m",
			ms.touched, strings.Join(textColumns(ms.partitionBy), ", "), ms.sql))
	}
	p := ms.plan
	groups := make([]string, len(p.Groups))
	for i, g := range p.Groups {
		groups[i] = g.Column
	}
	same := groupMatch(groups, "_jf_d", "_jf_p")
	stmts := []string{
		fmt.Sprintf("CREATE OR REPLACE TEMP TABLE _jf_delta AS %s", p.PartialSQL),
		fmt.Sprintf("CREATE OR REPLACE TEMP TABLE _jf_merged AS %s", p.MergeSQL(fmt.Sprintf(
			"(SELECT * FROM %s _jf_p WHERE EXISTS (SELECT 1 FROM _jf_delta _jf_d WHERE %s) UNION ALL BY NAME SELECT * FROM _jf_delta)", ms.partials, same))),
		fmt.Sprintf("DELETE FROM %s _jf_p WHERE EXISTS (SELECT 1 FROM _jf_delta _jf_d WHERE %s)", ms.partials, same),
		fmt.Sprintf("INSERT INTO %s BY NAME SELECT * FROM _jf_merged", ms.partials),
	}
	if len(ms.partitionBy) > 0 {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s SELECT DISTINCT %s FROM _jf_delta", ms.touched, strings.Join(ms.partitionExprs(""), ", ")))
	}
	stmts = append(stmts, "DROP TABLE _jf_delta", "DROP TABLE _jf_merged")
	if err := execAll(ctx, b.conn, stmts...); err != nil {
		return fmt.Errorf("mart %s: fold: %w", ms.name, err)
	}
	return nil
}

// groupMatch is the condition that rows a and b are in the same group.
func groupMatch(groups []string, a, b string) string {
	if len(groups) == 0 {
		return "TRUE"
	}
	conds := make([]string, len(groups))
	for i, g := range groups {
		conds[i] = fmt.Sprintf("%s.%s IS NOT DISTINCT FROM %s.%s", a, duckdb.Ident(g), b, duckdb.Ident(g))
	}
	return strings.Join(conds, " AND ")
}

// recomputeWhole computes a new or changed mart from the whole lake (once
// the log is folded in); its next write replaces every partition.
func (b *MartBuilder) recomputeWhole(ctx context.Context, ms *martState) error {
	if ms.plan != nil {
		if err := b.bindWholeLake(ctx); err != nil {
			return err
		}
		if err := execAll(ctx, b.conn, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS %s", ms.partials, ms.plan.PartialSQL)); err != nil {
			return fmt.Errorf("mart %s: compute from the lake: %w", ms.name, err)
		}
	}
	ms.rebuild, ms.whole = false, true
	ms.pendingRecords, ms.pendingSince = 0, time.Time{}
	return nil
}

// writeMart writes the partitions of ms touched since its last write (all
// of them when whole), removes those left without rows, and writes its
// manifest; then the mart's rules run.
func (b *MartBuilder) writeMart(ctx context.Context, ms *martState, folded uint64) error {
	start := time.Now()
	var touched [][]*string
	if len(ms.partitionBy) > 0 && !ms.whole {
		var err error
		touched, err = partitionValues(ctx, b.conn, fmt.Sprintf("SELECT DISTINCT * FROM %s", ms.touched), len(ms.partitionBy))
		if err != nil {
			return err
		}
	}
	if len(ms.partitionBy) > 0 && !ms.whole && len(touched) == 0 {
		// The new rows fell in no partition (a WHERE left them out).
		ms.pendingRecords, ms.pendingSince, ms.lastSeq = 0, time.Time{}, folded
		return b.writeManifest(ms)
	}
	out := "_jf_out"
	var q string
	switch {
	case ms.plan != nil && (ms.whole || len(ms.partitionBy) == 0):
		q = ms.plan.FinalSQL(ms.partials)
	case ms.plan != nil:
		conds := make([]string, len(ms.partitionBy))
		for i, e := range ms.partitionExprs("_jf_p.") {
			conds[i] = fmt.Sprintf("%s IS NOT DISTINCT FROM _jf_t.p%d", e, i)
		}
		q = ms.plan.FinalSQL(fmt.Sprintf("(SELECT * FROM %s _jf_p WHERE EXISTS (SELECT 1 FROM %s _jf_t WHERE %s))",
			ms.partials, ms.touched, strings.Join(conds, " AND ")))
	default:
		if err := b.bindWholeLake(ctx); err != nil {
			return err
		}
		q = ms.sql
		if len(touched) > 0 {
			q = fmt.Sprintf("SELECT * FROM (%s) _jf_m WHERE %s", ms.sql, partitionFilter(ms, touched))
		}
	}
	if err := execAll(ctx, b.conn, fmt.Sprintf("CREATE OR REPLACE TEMP TABLE %s AS %s", out, q)); err != nil {
		return fmt.Errorf("mart %s: %w", ms.name, err)
	}
	defer func() { _, _ = b.conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+out) }()
	tmp := filepath.Join(tempDir(b.cfg.DataDir, b.cfg.Dataset.Name), "mart-"+ms.name)
	written, err := writeMartFiles(ctx, b.conn, ms, out, ms.compression, tmp)
	if err != nil {
		return err
	}
	// Partitions that have no rows any more: touched ones not written, or
	// for a whole write every one not written.
	var gone []string
	if ms.whole {
		onDisk, err := partitionFiles(ms.dir)
		if err != nil {
			return err
		}
		for _, rel := range onDisk {
			if _, ok := written[rel]; !ok {
				gone = append(gone, rel)
			}
		}
		ms.parts = map[string]int64{}
	} else {
		for _, vals := range touched {
			rel := path.Join(filepath.ToSlash(marts.PartitionDir(ms.partitionBy, vals)), marts.DataFile)
			if _, ok := written[rel]; !ok {
				gone = append(gone, rel)
			}
		}
	}
	for _, rel := range gone {
		if err := removePartition(ms.dir, rel); err != nil {
			return err
		}
		delete(ms.parts, rel)
	}
	for rel, n := range written {
		ms.parts[rel] = n
	}
	if len(ms.partitionBy) > 0 {
		if err := execAll(ctx, b.conn, "DELETE FROM "+ms.touched); err != nil {
			return err
		}
	}
	ms.whole, ms.pendingRecords, ms.pendingSince = false, 0, time.Time{}
	ms.updatedAt, ms.lastSeq = time.Now().UTC(), folded
	rebuilt := !ms.rebuildSince.IsZero()
	if rebuilt {
		ms.rebuiltAt = ms.updatedAt
	}
	if err := b.writeManifest(ms); err != nil {
		return err
	}
	if rebuilt {
		rows, _ := ms.rows()
		b.log.Info().Str("mart", ms.name).Int64("rows", rows).Int("partitions", len(written)).Dur("took", time.Since(ms.rebuildSince)).Msg("mart rebuilt from the lake")
		ms.rebuildSince = time.Time{}
	}
	b.log.Debug().Str("mart", ms.name).Int("partitions", len(written)).Int("removed", len(gone)).Dur("took", time.Since(start)).Msg("mart written")
	if f := b.cfg.FlushedFunc; f != nil {
		if err := b.bindRuleViews(ctx); err != nil {
			b.log.Warn().Err(err).Msg("views for mart rules")
		} else {
			f(ctx, b.conn, ms.manifest(b.cfg.Dataset.Name))
		}
	}
	return nil
}

// markRebuilding notes in the manifest of a changed mart that it is
// being rebuilt, so that status says so while its old files still
// serve queries (the manifest keeps their columns until the new write).
// Best effort: only status reads the note.
func (b *MartBuilder) markRebuilding(ms *martState, why string) {
	m, err := marts.ReadManifest(ms.dir)
	if err != nil {
		return // never written: nothing to show yet
	}
	m.Rebuilding = why
	if err := marts.WriteManifestMirror(m); err != nil {
		b.log.Warn().Err(err).Str("mart", ms.name).Msg("note the rebuild in the mart's manifest")
	}
}

// writeManifest rewrites ms's manifest; like its files, it is synced at
// the next checkpoint.
func (b *MartBuilder) writeManifest(ms *martState) error {
	m := ms.manifest(b.cfg.Dataset.Name)
	if err := marts.WriteManifestMirror(m); err != nil {
		return err
	}
	ms.dirty(filepath.Join(ms.dir, marts.ManifestFile))
	return nil
}

// writeLakeManifest describes the lake: rows, date partitions, and the
// sequence every partition's lake has caught up with.
func (b *MartBuilder) writeLakeManifest() error {
	ds := b.cfg.Dataset
	lakeSeq := make(map[int]uint64, len(b.progress))
	for _, p := range b.progress {
		lakeSeq[p.Partition] = p.LakeSeq
	}
	seq, _ := marts.FoldedSeq(b.progress, lakeSeq)
	cols := make([]marts.Column, 0, len(ds.Schema)+1)
	for _, c := range ds.Schema {
		cols = append(cols, marts.Column{Name: c.Name, Type: c.Type})
	}
	monthCol := lakeMonthColumn(ds)
	cols = append(cols, marts.Column{Name: lakeDateColumn(ds), Type: "DATE"}, marts.Column{Name: monthCol, Type: "VARCHAR"})
	m := marts.Manifest{
		Name: ds.Name, Kind: marts.KindLake, Dataset: ds.Name, Columns: cols, PartitionBy: []string{monthCol},
		Rows: b.cp.LakeRows, Partitions: len(b.cp.Months), LastSeq: seq, Dir: marts.LakePath(b.cfg.DataDir, ds.Name),
	}
	sig := fmt.Sprintf("%d/%d/%d", m.Rows, m.Partitions, m.LastSeq)
	if sig == b.manifest {
		return nil
	}
	m.UpdatedAt = time.Now().UTC()
	if err := mkdirAll(m.Dir); err != nil {
		return err
	}
	// Synced at the next checkpoint, as the marts' manifests are.
	if err := marts.WriteManifestMirror(m); err != nil {
		return err
	}
	b.manifest = sig
	return nil
}

// writeProgress mirrors the dataset's progress for status: what its
// partitions committed.
func (b *MartBuilder) writeProgress(progress []marts.PartitionProgress) error {
	p := marts.Progress{Dataset: b.cfg.Dataset.Name}
	for _, pp := range progress {
		p.CommittedSeq = max(p.CommittedSeq, pp.CommittedSeq)
		p.Records += pp.Records
		p.Duplicates += pp.Duplicates
		if pp.UpdatedAt.After(p.UpdatedAt) {
			p.UpdatedAt = pp.UpdatedAt
		}
	}
	p.Folded = make(map[string]uint64, len(b.cp.Folded))
	for k, v := range b.cp.Folded {
		p.Folded[k] = v
	}
	return marts.WriteProgress(b.cfg.DataDir, p)
}

// checkpoint writes every mart with pending records (a checkpoint must
// not cover records whose partitions are not written), then saves the
// state.
func (b *MartBuilder) checkpoint(ctx context.Context) error {
	folded, _ := marts.FoldedSeq(b.progress, b.foldedByPartition())
	for _, ms := range b.marts {
		if ms.rebuild {
			if err := b.recomputeWhole(ctx, ms); err != nil {
				return err
			}
		}
		if !ms.pendingSince.IsZero() || ms.whole {
			if err := b.writeMart(ctx, ms, folded); err != nil {
				return err
			}
		}
	}
	for _, ms := range b.marts {
		if err := ms.syncWrites(); err != nil {
			return err
		}
	}
	lake := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	if err := syncFile(filepath.Join(lake, marts.ManifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	cp := b.cp
	cp.Gen = b.saved.Gen + 1
	cp.At = time.Now().UTC()
	cp.Processed = maps(b.cp.Processed)
	cp.Folded = maps(b.cp.Folded)
	cp.Months = slices.Clone(b.cp.Months)
	cp.Marts = map[string]martCheckpoint{}
	for i, ms := range b.marts {
		mc := martCheckpoint{Fingerprint: ms.fingerprint, Columns: ms.columns, Parts: maps(ms.parts), UpdatedAt: ms.updatedAt, LastSeq: ms.lastSeq}
		if ms.plan != nil {
			mc.Partials = "partials_" + strconv.Itoa(i)
		}
		cp.Marts[ms.name] = mc
	}
	if err := b.saveCheckpoint(ctx, b.conn, cp, b.saved); err != nil {
		return err
	}
	b.saved, b.savedAt = cp, time.Now()
	b.cp.Gen = cp.Gen
	return nil
}

func maps[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// removeLakeFiles forgets lake files a compaction replaced.
func (b *MartBuilder) removeLakeFiles(ctx context.Context, files []string) error {
	vals := make([]string, len(files))
	for i, f := range files {
		vals[i] = duckdb.Literal(f)
	}
	return execAll(ctx, b.conn, fmt.Sprintf("DELETE FROM %s WHERE path IN (%s)", lakeFilesTable, strings.Join(vals, ", ")))
}

// addLakeFiles records committed lake files (relative paths).
func (b *MartBuilder) addLakeFiles(ctx context.Context, files []string) error {
	if len(files) == 0 {
		return nil
	}
	months := map[string]bool{}
	for _, d := range b.cp.Months {
		months[d] = true
	}
	vals := make([]string, len(files))
	for i, f := range files {
		vals[i] = "(" + duckdb.Literal(f) + ")"
		if d := path.Dir(f); !months[d] {
			months[d] = true
			b.cp.Months = append(b.cp.Months, d)
		}
	}
	return execAll(ctx, b.conn, fmt.Sprintf("INSERT INTO %s VALUES %s", lakeFilesTable, strings.Join(vals, ", ")))
}

func (b *MartBuilder) lakeFileCount(ctx context.Context) int {
	var n int
	_ = b.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+lakeFilesTable).Scan(&n)
	return n
}

// bindDataset makes the dataset's name (and the lake's, for rules) a view
// of src on the builder's connection: a temp view shadows any table.
func (b *MartBuilder) bindDataset(ctx context.Context, src string) error {
	return execAll(ctx, b.conn, fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s AS %s", duckdb.Ident(b.cfg.Dataset.Name), src))
}

// bindWholeLake binds the dataset's name to every committed lake file.
func (b *MartBuilder) bindWholeLake(ctx context.Context) error {
	if b.lakeFileCount(ctx) == 0 {
		return b.bindDataset(ctx, emptyRows(b.cfg.Dataset))
	}
	dir := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	src, err := b.parquetSource(ctx, duckdb.Literal(filepath.Join(dir, "*", "*.parquet")),
		fmt.Sprintf("_jf_file IN (SELECT %s || path FROM %s)", duckdb.Literal(dir+string(filepath.Separator)), lakeFilesTable))
	if err != nil {
		return err
	}
	return b.bindDataset(ctx, src)
}

// lakeSource reads the given lake files (relative paths) as the dataset.
func (b *MartBuilder) lakeSource(ctx context.Context, files []lakeEntryFile) (string, error) {
	dir := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	lits := make([]string, len(files))
	for i, f := range files {
		lits[i] = duckdb.Literal(filepath.Join(dir, filepath.FromSlash(f.Path)))
	}
	return b.parquetSource(ctx, "["+strings.Join(lits, ", ")+"]", "")
}

// parquetSource selects the dataset's columns, with the schema's types,
// from Parquet files; a column the files lack (added to the schema after
// they were written) is NULL.
func (b *MartBuilder) parquetSource(ctx context.Context, files, where string) (string, error) {
	scan := fmt.Sprintf("read_parquet(%s, union_by_name = true, hive_partitioning = false, filename = '_jf_file')", files)
	have, err := describe(ctx, b.conn, "SELECT * FROM "+scan)
	if err != nil {
		return "", fmt.Errorf("read lake files: %w", err)
	}
	inFiles := map[string]bool{}
	for _, c := range have {
		inFiles[strings.ToLower(c.Name)] = true
	}
	exprs := make([]string, len(b.cfg.Dataset.Schema))
	for i, c := range b.cfg.Dataset.Schema {
		if inFiles[strings.ToLower(c.Name)] {
			exprs[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", duckdb.Ident(c.Name), c.Type, duckdb.Ident(c.Name))
		} else {
			exprs[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, duckdb.Ident(c.Name))
		}
	}
	q := fmt.Sprintf("SELECT %s FROM %s", strings.Join(exprs, ", "), scan)
	if where != "" {
		q += " WHERE " + where
	}
	return q, nil
}

// emptyRows is a relation of the dataset's columns with no rows.
func emptyRows(ds DatasetConfig) string {
	exprs := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		exprs[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, duckdb.Ident(c.Name))
	}
	return fmt.Sprintf("SELECT %s WHERE false", strings.Join(exprs, ", "))
}

// bindRuleViews shows the dataset's marts and lake by name on the
// builder's connection, as `jetfleet query` does, for mart rules.
func (b *MartBuilder) bindRuleViews(ctx context.Context) error {
	if err := b.bindWholeLake(ctx); err != nil {
		return err
	}
	names := map[string]bool{}
	var stmts []string
	for _, ms := range b.marts {
		names[strings.ToLower(ms.name)] = true
		var q string
		switch {
		case ms.plan != nil:
			q = ms.plan.FinalSQL(ms.partials)
		case len(ms.parts) == 0:
			exprs := make([]string, len(ms.columns))
			for i, c := range ms.columns {
				exprs[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, duckdb.Ident(c.Name))
			}
			q = fmt.Sprintf("SELECT %s WHERE false", strings.Join(exprs, ", "))
		default:
			q = martFilesSQL(ms)
		}
		stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s AS %s", duckdb.Ident(ms.name), q))
	}
	if names[strings.ToLower(b.cfg.Dataset.Name)] {
		stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE TEMP VIEW %s AS SELECT * FROM %s",
			duckdb.Ident(b.cfg.Dataset.Name+"_lake"), duckdb.Ident(b.cfg.Dataset.Name)))
	}
	return execAll(ctx, b.conn, stmts...)
}

// martFilesSQL reads a mart's files with its columns' types and order.
func martFilesSQL(ms *martState) string {
	cols := make([]string, len(ms.columns))
	for i, c := range ms.columns {
		cols[i] = fmt.Sprintf("CAST(%s AS %s) AS %s", duckdb.Ident(c.Name), c.Type, duckdb.Ident(c.Name))
	}
	if len(ms.partitionBy) == 0 {
		return fmt.Sprintf("SELECT %s FROM read_parquet(%s)", strings.Join(cols, ", "), duckdb.Literal(filepath.Join(ms.dir, marts.DataFile)))
	}
	return fmt.Sprintf("SELECT %s FROM read_parquet(%s, hive_partitioning = true, hive_types_autocast = false)",
		strings.Join(cols, ", "), duckdb.Literal(filepath.Join(ms.dir, "**", marts.DataFile)))
}
