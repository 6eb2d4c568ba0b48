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
	"strings"
	"time"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// martState is one mart as the builder keeps it. An incremental mart (its
// SQL a decomposable aggregation, see incremental.go) keeps its partial
// aggregates in an engine table and folds each lake flush's rows into the
// groups they touch; any other mart recomputes the partitions the new rows
// touch from the whole lake. Either way only touched partitions are
// rewritten, when the mart's flush policy says so.
type martState struct {
	name        string
	sql         string
	partitionBy []string
	dir         string
	fingerprint string
	columns     []marts.Column
	flushEvery  int64
	flushAfter  time.Duration
	compression string

	plan     *incrPlan // nil: recompute from the lake
	partials string    // the plan's table of partial aggregates
	touched  string    // table of the partition values touched since the last write

	// parts are the mart's partition directories (relative, slash
	// separated, marts.DataFile for an unpartitioned mart) and their rows.
	parts     map[string]int64
	updatedAt time.Time
	lastSeq   uint64

	// Since the last write: records folded in, the first one's time, and
	// whether every partition is to be written (a new or changed mart).
	pendingRecords int64
	pendingSince   time.Time
	whole          bool
	// rebuild: its partial aggregates (or, recomputed, its partitions) are
	// to be computed from the whole lake before the next write.
	rebuild bool
	// rebuildSince is when a recomputation from the lake of a changed
	// mart began (zero: none under way), for the log and status;
	// rebuiltAt is when the last one was written.
	rebuildSince time.Time
	rebuiltAt    time.Time
	// dirtyFiles were written since the last checkpoint, not synced.
	dirtyFiles map[string]bool
}

func newMartState(dataDir string, m Mart, every int64, after time.Duration, i int) *martState {
	q := strings.TrimRight(strings.TrimSpace(m.SQL), ";")
	ms := &martState{
		name: m.Name, sql: q, partitionBy: m.PartitionBy, dir: marts.MartPath(dataDir, m.Name),
		fingerprint: fingerprint("mart", q, strings.Join(m.PartitionBy, ",")),
		flushEvery:  int64(m.FlushRecords), flushAfter: m.FlushInterval, compression: strings.ToLower(m.Compression),
		partials: duckdb.Ident(fmt.Sprintf("_jf_partials_%d", i)),
		touched:  duckdb.Ident(fmt.Sprintf("_jf_touched_%d", i)),
		parts:    map[string]int64{},
	}
	if ms.flushEvery <= 0 {
		ms.flushEvery = every
	}
	if ms.flushAfter <= 0 {
		ms.flushAfter = after
	}
	return ms
}

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

func (ms *martState) due(now time.Time) bool {
	if ms.whole || ms.rebuild {
		return true
	}
	if ms.pendingSince.IsZero() {
		return false
	}
	return ms.pendingRecords >= ms.flushEvery || now.Sub(ms.pendingSince) >= ms.flushAfter
}

func (ms *martState) note(records int64, now time.Time) {
	if ms.pendingSince.IsZero() {
		ms.pendingSince = now
	}
	ms.pendingRecords += records
}

func (ms *martState) rows() (rows int64, partitions int) {
	for _, n := range ms.parts {
		if n > 0 {
			rows += n
			partitions++
		}
	}
	return rows, partitions
}

func (ms *martState) manifest(dataset string) marts.Manifest {
	rows, partitions := ms.rows()
	m := marts.Manifest{
		Name: ms.name, Kind: marts.KindMart, Dataset: dataset, Columns: ms.columns, PartitionBy: ms.partitionBy,
		Rows: rows, Partitions: partitions, UpdatedAt: ms.updatedAt.UTC(), LastSeq: ms.lastSeq, Dir: ms.dir,
	}
	if !ms.rebuiltAt.IsZero() {
		at := ms.rebuiltAt.UTC()
		m.RebuiltAt = &at
	}
	return m
}

// partitionExprs are the mart's partition columns as text, as DuckDB
// writes them in Hive directory names.
func (ms *martState) partitionExprs(prefix string) []string {
	out := make([]string, len(ms.partitionBy))
	for i, c := range ms.partitionBy {
		col := c
		if ms.plan != nil {
			col = ms.plan.PartitionGroup[c]
		}
		out[i] = fmt.Sprintf("CAST(%s%s AS VARCHAR)", prefix, duckdb.Ident(col))
	}
	return out
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

// partitionValues lists the rows of a query of text columns (partition
// values, nil for NULL), with a count as the last column when withCount.
func partitionValues(ctx context.Context, conn *sql.Conn, q string, n int) ([][]*string, error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	defer rows.Close()
	var out [][]*string
	for rows.Next() {
		vals := make([]sql.NullString, n)
		ptrs := make([]any, n)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]*string, n)
		for i, v := range vals {
			if v.Valid {
				s := v.String
				row[i] = &s
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// partitionFilter matches the rows of the given partitions of a mart's
// output. It is built from literals, so DuckDB pushes it below the mart's
// GROUP BY into the lake scan.
func partitionFilter(ms *martState, values [][]*string) string {
	types := map[string]string{}
	for _, c := range ms.columns {
		types[c.Name] = c.Type
	}
	ors := make([]string, 0, len(values))
	for _, vals := range values {
		ands := make([]string, len(vals))
		for i, v := range vals {
			col := duckdb.Ident(ms.partitionBy[i])
			if v == nil {
				ands[i] = col + " IS NULL"
				continue
			}
			typ := types[ms.partitionBy[i]]
			if typ == "" {
				typ = "VARCHAR"
			}
			ands[i] = fmt.Sprintf("%s = CAST(%s AS %s)", col, duckdb.Literal(*v), typ)
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return strings.Join(ors, " OR ")
}

// writeMartFiles writes the rows of table out (the mart's columns) as the
// mart's partitions that have rows: DuckDB writes them aside, each is
// synced and renamed over its partition's file. It returns the rows per
// partition directory written.
func writeMartFiles(ctx context.Context, conn *sql.Conn, ms *martState, out, compression, tmp string) (map[string]int64, error) {
	written := map[string]int64{}
	if err := os.RemoveAll(tmp); err != nil {
		return nil, err
	}
	if err := mkdirAll(ms.dir, filepath.Dir(tmp)); err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if len(ms.partitionBy) == 0 {
		var n int64
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM "+out).Scan(&n); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			return nil, err
		}
		file := filepath.Join(tmp, marts.DataFile)
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`COPY %s TO %s (FORMAT parquet, COMPRESSION %s)`, out, duckdb.Literal(file), compression)); err != nil {
			return nil, fmt.Errorf("mart %s: write: %w", ms.name, err)
		}
		if err := ms.replaceFile(file, filepath.Join(ms.dir, marts.DataFile)); err != nil {
			return nil, err
		}
		written[marts.DataFile] = n
		return written, nil
	}
	counts, err := partitionValues(ctx, conn, fmt.Sprintf(`SELECT %s, CAST(count(*) AS VARCHAR) FROM %s GROUP BY ALL`,
		strings.Join(textColumns(ms.partitionBy), ", "), out), len(ms.partitionBy)+1)
	if err != nil {
		return nil, err
	}
	if len(counts) == 0 {
		return written, nil
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`COPY %s TO %s (FORMAT parquet, COMPRESSION %s, PARTITION_BY (%s), FILENAME_PATTERN 'data_{i}')`,
		out, duckdb.Literal(tmp), compression, identList(ms.partitionBy))); err != nil {
		return nil, fmt.Errorf("mart %s: write: %w", ms.name, err)
	}
	for _, vals := range counts {
		var n int64
		if _, err := fmt.Sscan(*vals[len(vals)-1], &n); err != nil {
			return nil, fmt.Errorf("mart %s: row count: %w", ms.name, err)
		}
		dir := marts.PartitionDir(ms.partitionBy, vals[:len(vals)-1])
		src := filepath.Join(tmp, dir, "data_0.parquet")
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("mart %s: partition %s not where DuckDB should have written it: %w", ms.name, dir, err)
		}
		if err := ms.replaceFile(src, filepath.Join(ms.dir, dir, marts.DataFile)); err != nil {
			return nil, err
		}
		written[filepath.ToSlash(filepath.Join(dir, marts.DataFile))] = n
	}
	return written, nil
}

func textColumns(cols []string) []string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = fmt.Sprintf("CAST(%s AS VARCHAR)", duckdb.Ident(c))
	}
	return out
}

// replaceFile renames src over dst, atomically for readers. The file and
// the rename are made durable later (syncWrites), before the builder's
// next checkpoint: marts are derived, and whatever of a write an OS crash
// lost is redone by the replay from the checkpoint.
func (ms *martState) replaceFile(src, dst string) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dst); err != nil {
		return err
	}
	ms.dirty(dst)
	return nil
}

// dirty notes a file written since the last checkpoint.
func (ms *martState) dirty(path string) {
	if ms.dirtyFiles == nil {
		ms.dirtyFiles = map[string]bool{}
	}
	ms.dirtyFiles[path] = true
}

// syncWrites makes the files written and renamed since the last call
// durable: each file, then each directory.
func (ms *martState) syncWrites() error {
	dirs := map[string]bool{ms.dir: true}
	for path := range ms.dirtyFiles {
		if err := syncFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		dirs[filepath.Dir(path)] = true
		delete(ms.dirtyFiles, path)
	}
	for dir := range dirs {
		if err := marts.SyncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// removePartition deletes a partition's file, and its directories once
// empty.
func removePartition(martDir, rel string) error {
	path := filepath.Join(martDir, filepath.FromSlash(rel))
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for dir := filepath.Dir(path); dir != martDir && strings.HasPrefix(dir, martDir); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty
		}
	}
	return nil
}

// partitionFiles lists the data files of a mart's partitions, relative to
// its directory.
func partitionFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() == marts.DataFile {
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
