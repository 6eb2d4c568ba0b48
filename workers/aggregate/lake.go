package aggregate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// lakeCompression is the lake files' Parquet codec: snappy writes about
// 30% faster than zstd here (docs/bench.md) and every Parquet reader
// decodes it without plugins.
const lakeCompression = "snappy"

// jsonObjectSize is DuckDB's maximum_object_size for journal lines of up
// to maxLine bytes: a power of two, at least 1 MiB. DuckDB allocates
// buffers of twice it per thread, so it follows what was written.
func jsonObjectSize(maxLine int) int {
	n := 1 << 20
	for n <= maxLine {
		n <<= 1
	}
	return n
}

// flushLocked is one lake flush of every open partition: their journals'
// segments, read by DuckDB in one pass, become one Parquet file per event
// date, named after this owner and the flush's number n; the flush commits
// with entry n of this owner's lake log. Each partition notes the flush
// before the files are written, so a crash at any point is resolved on
// the partition's next open: the entry is there (finish) or not (remove
// the files, flush the segments again). The caller holds flushMu.
func (in *Intake) flushLocked(ctx context.Context) (err error) {
	defer func() { in.flushErr = err }()
	n := in.nextN
	var taken []*flushSegments
	abort := func() {
		for _, fs := range taken {
			if aerr := fs.pt.abortFlush(); aerr != nil {
				in.log.Warn().Err(aerr).Int("partition", fs.pt.p).Msg("note aborted lake flush")
			}
		}
	}
	for _, pt := range in.partitions() {
		fs, err := pt.beginFlush(in.cfg.Owner, n)
		if err != nil {
			abort()
			return err
		}
		if fs != nil {
			taken = append(taken, fs)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	start := time.Now()
	entry, table, err := in.writeLake(ctx, n, taken)
	if err == nil && in.hooks.beforeEntryFunc != nil {
		if err := in.hooks.beforeEntryFunc(); err != nil {
			return err // as if killed: no cleanup, no note
		}
	}
	if err == nil {
		err = writeLakeEntry(in.cfg.DataDir, in.cfg.Dataset.Name, entry)
		if err != nil && entryWritten(in.cfg.DataDir, in.cfg.Dataset.Name, entry) {
			// Renamed into place, but its directory's sync failed: the
			// flush committed, and its files must stay.
			in.log.Warn().Err(err).Uint64("flush", n).Msg("lake log entry written but not synced")
			err = nil
		}
	}
	if err != nil {
		in.dropTable(table)
		err = errors.Join(err, removeFlushFiles(in.cfg.DataDir, in.cfg.Dataset.Name, in.cfg.Owner, n))
		abort()
		return fmt.Errorf("lake flush %d: %w", n, err)
	}
	in.nextN++
	if in.hooks.afterEntryFunc != nil {
		if err := in.hooks.afterEntryFunc(); err != nil {
			in.dropTable(table)
			return err
		}
	}
	var errs []error
	for _, fs := range taken {
		// Committed: a failure here is finished by the partition's next open.
		errs = append(errs, fs.pt.completeFlush(fs))
	}
	in.log.Debug().Uint64("flush", n).Int64("rows", entry.Rows).Int("files", len(entry.Files)).Int("partitions", len(taken)).
		Dur("took", time.Since(start)).Msg("lake flushed")
	if b := in.cfg.Builder; b == nil || !b.offer(entry, table) {
		in.dropTable(table)
	}
	return errors.Join(errs...)
}

// flushTable is the engine table holding flush n's rows until the builder
// has folded them in.
func flushTable(owner string, n uint64) string {
	return duckdb.Ident("_jf_flush_" + owner + "_" + strconv.FormatUint(n, 10))
}

func (in *Intake) dropTable(table string) {
	if table == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := in.cfg.Engine.db.ExecContext(ctx, "DROP TABLE IF EXISTS "+table); err != nil {
		in.log.Warn().Err(err).Msg("drop lake flush table")
	}
}

// writeLake reads the segments into an engine table and writes it to the
// lake, a file per date; it returns the flush's log entry and the table.
func (in *Intake) writeLake(ctx context.Context, n uint64, taken []*flushSegments) (lakeEntry, string, error) {
	e := lakeEntry{Owner: in.cfg.Owner, N: n, At: time.Now().UTC(), Partitions: map[string]uint64{}}
	var paths []string
	maxLine := 0
	for _, fs := range taken {
		paths = append(paths, fs.paths...)
		maxLine = max(maxLine, fs.maxLine)
		e.Partitions[strconv.Itoa(fs.pt.p)] = fs.seq
	}
	conn, err := in.cfg.Engine.conn(ctx)
	if err != nil {
		return e, "", err
	}
	defer conn.Close()
	table := flushTable(in.cfg.Owner, n)
	ds := in.cfg.Dataset
	dateCol, monthCol := lakeDateColumn(ds), lakeMonthColumn(ds)
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`CREATE OR REPLACE TABLE %[1]s AS SELECT *, strftime(%[2]s, '%%Y-%%m') AS %[3]s FROM (SELECT %[4]s, %[5]s AS %[2]s FROM %[6]s WHERE _jf_at IS NOT NULL)`,
		table, duckdb.Ident(dateCol), duckdb.Ident(monthCol), schemaColumns(ds), lakeDateExpr(ds), journalScan(ds, paths, maxLine))); err != nil {
		return e, table, fmt.Errorf("read journals: %w", err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&e.Rows); err != nil {
		return e, table, err
	}
	lake := marts.LakePath(in.cfg.DataDir, ds.Name)
	tmp := flushTempDir(in.cfg.DataDir, ds.Name, in.cfg.Owner, n)
	if err := os.RemoveAll(tmp); err != nil {
		return e, table, err
	}
	if err := mkdirAll(lake, filepath.Dir(tmp)); err != nil {
		return e, table, err
	}
	if e.Rows > 0 {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`COPY %s TO %s (FORMAT parquet, COMPRESSION %s, PARTITION_BY (%s), FILENAME_PATTERN 'data_{i}')`,
			table, duckdb.Literal(tmp), lakeCompression, duckdb.Ident(monthCol))); err != nil {
			return e, table, fmt.Errorf("write lake files: %w", err)
		}
	}
	files, err := placeFiles(tmp, lake, func(i int) string { return lakeFileName(in.cfg.Owner, n, i) })
	if err != nil {
		return e, table, err
	}
	for _, f := range files {
		e.Files = append(e.Files, lakeEntryFile{Path: f})
	}
	return e, table, os.RemoveAll(tmp)
}

// placeFiles moves the files DuckDB wrote under tmp (Hive directories)
// into the same directories under dst, synced, named name(i) for the i-th
// file of a directory. It returns their paths relative to dst, slash
// separated.
func placeFiles(tmp, dst string, nameFunc func(i int) string) ([]string, error) {
	var rels []string
	dirs := map[string]bool{}
	counts := map[string]int{}
	err := filepath.WalkDir(tmp, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == tmp {
				return nil // nothing written
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(d.Name(), ".parquet") {
			return nil
		}
		rel, err := filepath.Rel(tmp, filepath.Dir(path))
		if err != nil {
			return err
		}
		if err := syncFile(path); err != nil {
			return err
		}
		dir := filepath.Join(dst, rel)
		if !dirs[dir] {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			dirs[dir] = true
		}
		i := counts[rel]
		counts[rel]++
		target := filepath.Join(dir, nameFunc(i))
		if err := os.Rename(path, target); err != nil {
			return err
		}
		rels = append(rels, filepath.ToSlash(filepath.Join(rel, nameFunc(i))))
		return nil
	})
	if err != nil {
		return nil, err
	}
	for dir := range dirs {
		if err := marts.SyncDir(dir); err != nil {
			return nil, err
		}
	}
	if len(dirs) > 0 {
		if err := marts.SyncDir(dst); err != nil {
			return nil, err
		}
	}
	return rels, nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// journalScan reads journal segments as the dataset's rows, with the
// records' publish time (NULL on the journal's keys lines).
func journalScan(ds DatasetConfig, paths []string, maxLine int) string {
	lits := make([]string, len(paths))
	for i, p := range paths {
		lits[i] = duckdb.Literal(p)
	}
	cols := make([]string, 0, len(ds.Schema)+2)
	cols = append(cols, "_jf_at: 'BIGINT'")
	for _, c := range ds.Schema {
		cols = append(cols, duckdb.Literal(c.Name)+": "+duckdb.Literal(c.Type))
	}
	return fmt.Sprintf(`read_json([%s], format = 'newline_delimited', columns = {%s}, maximum_object_size = %d)`,
		strings.Join(lits, ", "), strings.Join(cols, ", "), jsonObjectSize(maxLine))
}

// schemaColumns lists the dataset's columns, quoted.
func schemaColumns(ds DatasetConfig) string {
	names := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		names[i] = duckdb.Ident(c.Name)
	}
	return strings.Join(names, ", ")
}

// The lake's rows carry their event date (lakeDateExpr), and its files are
// partitioned by the date's month: a Parquet file costs DuckDB about a
// millisecond to write whatever it holds, and a file per date and flush
// made the lake, and the time to write it, follow the days a flush spans
// (docs/bench.md). Readers filtering on the date skip files and row groups
// by the column's min/max statistics.

// lakeDateColumn is the lake's event date column: date, or lake_date when
// the schema has a column named date.
func lakeDateColumn(ds DatasetConfig) string { return lakeColumn(ds, "date") }

// lakeMonthColumn is the lake's partition column ('2026-10'): month, or
// lake_month when the schema has a column named month.
func lakeMonthColumn(ds DatasetConfig) string { return lakeColumn(ds, "month") }

func lakeColumn(ds DatasetConfig, name string) string {
	for _, c := range ds.Schema {
		if strings.EqualFold(c.Name, name) {
			return "lake_" + name
		}
	}
	return name
}

// lakeDateExpr is a record's event date: the UTC date of the first
// timestamp or date column, else of its publish time.
func lakeDateExpr(ds DatasetConfig) string {
	ingest := "CAST(make_timestamp(_jf_at) AS DATE)"
	for _, c := range ds.Schema {
		switch canonBaseType(c.Type) {
		case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
			// The instant's UTC date by arithmetic: a TIMESTAMPTZ cast
			// goes through ICU's calendar, ten times the cost per row.
			return fmt.Sprintf("coalesce(CAST(make_timestamp(epoch_us(%s)) AS DATE), %s)", duckdb.Ident(c.Name), ingest)
		case "TIMESTAMP", "DATETIME", "TIMESTAMP_US", "DATE":
			return fmt.Sprintf("coalesce(CAST(%s AS DATE), %s)", duckdb.Ident(c.Name), ingest)
		}
	}
	return ingest
}

// resolveFlush settles a lake flush that a crash interrupted: committed
// (its entry is in the log), the partition moves past its segments;
// otherwise its files are removed and the segments wait for the next one.
func (in *Intake) resolveFlush(pt *partition, f marts.LakeFlush) error {
	ds := in.cfg.Dataset.Name
	committed, err := lakeEntryCommitted(in.cfg.DataDir, ds, f.Owner, f.N)
	if err != nil {
		return err
	}
	if committed {
		pt.prog.LakeSegment = max(pt.prog.LakeSegment, f.LastSegment)
		pt.prog.LakeSeq = max(pt.prog.LakeSeq, f.Seq)
	} else if err := removeFlushFiles(in.cfg.DataDir, ds, f.Owner, f.N); err != nil {
		return err
	}
	pt.log.Info().Str("flush_owner", f.Owner).Uint64("flush", f.N).Bool("committed", committed).Msg("resolved an interrupted lake flush")
	pt.prog.Flush = nil
	return nil
}
