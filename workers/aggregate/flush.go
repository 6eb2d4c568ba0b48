package aggregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jetfleet/jetfleet/marts"
)

// part is one partition a flush wrote (or emptied).
type part struct {
	dir    string    // relative to the output's directory, "" unpartitioned
	values []*string // partition values as text, nil for NULL
	rows   int64
}

// flushOutput folds the records committed since o's last flush into its
// files, then records that in the state. The files are written from one
// read snapshot; the state is updated only after every file is renamed
// into place, so a crash anywhere leaves a state that names an older
// batch, and the next flush rewrites the same partitions again.
func (a *Aggregator) flushOutput(ctx context.Context, conn *sql.Conn, o *output) error {
	start := time.Now()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	m, err := readMeta(ctx, tx)
	if err != nil {
		return fmt.Errorf("read meta: %w", err)
	}
	var parts []part
	if m.batch > o.flushedBatch {
		if parts, err = a.compute(ctx, tx, o, o.flushedBatch, m.batch); err != nil {
			return err
		}
		if err := a.writeParts(ctx, tx, o, parts); err != nil {
			return err
		}
	}
	// Temp objects made in the transaction; a rollback drops them too.
	if err := execAll(ctx, tx, append(a.dropPendingViewSQL(), "DROP TABLE IF EXISTS _jf_out", "DROP TABLE IF EXISTS _jf_touched")...); err != nil {
		return err
	}
	now := time.Now().UTC()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET flushed_batch = ?, last_seq = ?, updated_at = ? WHERE name = ? AND kind = ?`, tableOutputs),
		m.batch, m.committedSeq, now, o.name, o.kind); err != nil {
		return fmt.Errorf("record flush: %w", err)
	}
	for _, p := range parts {
		var err error
		switch {
		case o.appendOnly:
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO %s VALUES (?, ?, ?) ON CONFLICT (output, part) DO UPDATE SET rows = rows + excluded.rows`, tableParts), outputKey(o), p.dir, p.rows)
		case p.rows == 0:
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE output = ? AND part = ?`, tableParts), outputKey(o), p.dir)
		default:
			_, err = tx.ExecContext(ctx, fmt.Sprintf(`INSERT OR REPLACE INTO %s VALUES (?, ?, ?)`, tableParts), outputKey(o), p.dir, p.rows)
		}
		if err != nil {
			return fmt.Errorf("record partition %s: %w", p.dir, err)
		}
	}
	rows, partitions, err := countParts(ctx, tx, o)
	if err != nil {
		return err
	}
	if a.hooks.beforeFlushCommit != nil {
		if err := a.hooks.beforeFlushCommit(o.name); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit flush: %w", err)
	}
	o.flushedBatch, o.lastSeq = m.batch, m.committedSeq
	if err := a.writeManifest(o, rows, partitions, now); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if a.cfg.FlushedFunc != nil && len(parts) > 0 {
		a.cfg.FlushedFunc(o.kind, o.name)
	}
	if len(parts) > 0 {
		a.log.Debug().Str(o.kind, o.name).Int("partitions", len(parts)).Int64("rows", rows).Uint64("last_seq", m.committedSeq).
			Dur("took", time.Since(start)).Msg("flushed")
	}
	return nil
}

func outputKey(o *output) string { return o.kind + ":" + o.name }

func countParts(ctx context.Context, tx *sql.Tx, o *output) (rows int64, partitions int, err error) {
	var dirs int64
	err = tx.QueryRowContext(ctx, fmt.Sprintf(`SELECT count(DISTINCT regexp_replace(part, '/[^/]*$', '')), coalesce(sum(rows), 0) FROM %s WHERE output = ? AND rows > 0`, tableParts), outputKey(o)).
		Scan(&dirs, &rows)
	if err != nil {
		return 0, 0, fmt.Errorf("count partitions: %w", err)
	}
	return rows, int(dirs), nil
}

// compute materializes o's rows to write into the temp table _jf_out and
// returns the partitions they fall in. A mart gets every row of each
// partition that records of batches (since, upto] touch; the lake gets
// just those records. From batch 0 (a new or restarted mart) a mart is
// computed whole, and its partitions on disk that have no rows any more
// are emptied.
func (a *Aggregator) compute(ctx context.Context, tx *sql.Tx, o *output, since, upto int64) ([]part, error) {
	pending := a.pendingViewSQL(since, upto)
	drop := a.dropPendingViewSQL()
	cols := identList(o.partitionBy)
	whole := since == 0 && !o.appendOnly
	var stmts []string
	switch {
	case o.appendOnly:
		stmts = append(pending, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_out AS %s`, o.sql))
		stmts = append(stmts, drop...)
	case len(o.partitionBy) == 0 || whole:
		// Every partition is touched: no need to find which.
		stmts = []string{fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_out AS %s`, o.sql)}
	default:
		stmts = append(pending, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_touched AS SELECT DISTINCT %s FROM (%s) _jf_m`, cols, o.sql))
		stmts = append(stmts, drop...)
	}
	if err := execAll(ctx, tx, stmts...); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.kind, o.name, err)
	}

	if len(o.partitionBy) == 0 {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM _jf_out`).Scan(&n); err != nil {
			return nil, err
		}
		return []part{{dir: marts.DataFile, rows: n}}, nil
	}

	var touched [][]*string
	if !o.appendOnly && !whole {
		var err error
		if touched, err = partitionValues(ctx, tx, o.partitionBy, "_jf_touched", false); err != nil {
			return nil, err
		}
		if len(touched) == 0 {
			return nil, nil
		}
		filter := partitionFilter(o, touched)
		if err := execAll(ctx, tx, fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE _jf_out AS SELECT * FROM (%s) _jf_m WHERE %s`, o.sql, filter)); err != nil {
			return nil, fmt.Errorf("%s %s: %w", o.kind, o.name, err)
		}
	}
	counted, err := partitionValues(ctx, tx, o.partitionBy, "_jf_out", true)
	if err != nil {
		return nil, err
	}
	rowsOf := map[string]int64{}
	var parts []part
	file := marts.DataFile
	if o.appendOnly {
		file = fmt.Sprintf("%s%012d.parquet", a.lakeFilePrefix(), since+1)
	}
	for _, vals := range counted {
		n := *vals[len(vals)-1]
		vals = vals[:len(vals)-1]
		var rows int64
		fmt.Sscan(n, &rows)
		dir := filepath.ToSlash(filepath.Join(marts.PartitionDir(o.partitionBy, vals), file))
		rowsOf[dir] = rows
		parts = append(parts, part{dir: dir, values: vals, rows: rows})
	}
	for _, vals := range touched {
		dir := filepath.ToSlash(filepath.Join(marts.PartitionDir(o.partitionBy, vals), file))
		if _, ok := rowsOf[dir]; !ok {
			parts = append(parts, part{dir: dir, values: vals}) // emptied: remove its file
		}
	}
	if whole {
		onDisk, err := partitionFiles(o.dir)
		if err != nil {
			return nil, err
		}
		for _, dir := range onDisk {
			if _, ok := rowsOf[dir]; !ok {
				parts = append(parts, part{dir: dir}) // no rows any more: removed
			}
		}
	}
	return parts, nil
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

// partitionValues lists the distinct partition values of table as text,
// with the row count appended as the last value when withCount.
func partitionValues(ctx context.Context, tx *sql.Tx, partitionBy []string, table string, withCount bool) ([][]*string, error) {
	exprs := make([]string, len(partitionBy))
	for i, c := range partitionBy {
		exprs[i] = fmt.Sprintf("CAST(%s AS VARCHAR)", ident(c))
	}
	q := fmt.Sprintf(`SELECT DISTINCT %s FROM %s`, strings.Join(exprs, ", "), table)
	if withCount {
		q = fmt.Sprintf(`SELECT %s, CAST(count(*) AS VARCHAR) FROM %s GROUP BY ALL`, strings.Join(exprs, ", "), table)
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("partitions: %w", err)
	}
	defer rows.Close()
	n := len(exprs)
	if withCount {
		n++
	}
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

// partitionFilter matches the rows of the given partitions. It is built
// from literals, so DuckDB pushes it below the mart's GROUP BY.
func partitionFilter(o *output, values [][]*string) string {
	types := map[string]string{}
	for _, c := range o.columns {
		types[c.Name] = c.Type
	}
	ors := make([]string, 0, len(values))
	for _, vals := range values {
		ands := make([]string, len(vals))
		for i, v := range vals {
			col := ident(o.partitionBy[i])
			if v == nil {
				ands[i] = col + " IS NULL"
				continue
			}
			typ := types[o.partitionBy[i]]
			if typ == "" {
				typ = "VARCHAR"
			}
			ands[i] = fmt.Sprintf("%s = CAST(%s AS %s)", col, literal(*v), typ)
		}
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return strings.Join(ors, " OR ")
}

// rowFilter selects one partition's rows of _jf_out by the text of its
// values.
func rowFilter(partitionBy []string, vals []*string) string {
	if len(partitionBy) == 0 {
		return "TRUE"
	}
	ands := make([]string, len(vals))
	for i, v := range vals {
		col := fmt.Sprintf("CAST(%s AS VARCHAR)", ident(partitionBy[i]))
		if v == nil {
			ands[i] = col + " IS NULL"
		} else {
			ands[i] = col + " = " + literal(*v)
		}
	}
	return strings.Join(ands, " AND ")
}

// writeParts writes each partition aside, fsyncs it, and renames it into
// place; an emptied partition's file is removed.
func (a *Aggregator) writeParts(ctx context.Context, tx *sql.Tx, o *output, parts []part) error {
	sel := "*"
	if len(o.partitionBy) > 0 {
		sel = "* EXCLUDE (" + identList(o.partitionBy) + ")"
	}
	for _, p := range parts {
		target := filepath.Join(o.dir, filepath.FromSlash(p.dir))
		dir := filepath.Dir(target)
		if p.rows == 0 && !o.appendOnly {
			if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			_ = os.Remove(dir) // only if empty
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		tmp := filepath.Join(dir, marts.TempPrefix+filepath.Base(target)+"-"+nuid.Next())
		q := fmt.Sprintf(`COPY (SELECT %s FROM _jf_out WHERE %s) TO %s (FORMAT parquet, COMPRESSION zstd)`, sel, rowFilter(o.partitionBy, p.values), literal(tmp))
		if _, err := tx.ExecContext(ctx, q); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("%s %s: write %s: %w", o.kind, o.name, p.dir, err)
		}
		if err := syncFile(tmp); err != nil {
			os.Remove(tmp)
			return err
		}
		if a.hooks.beforeRename != nil {
			if err := a.hooks.beforeRename(o.name, target); err != nil {
				return err // the temp file stays behind, as after a crash
			}
		}
		if err := os.Rename(tmp, target); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := marts.SyncDir(dir); err != nil {
			return err
		}
	}
	if len(parts) > 0 {
		return marts.SyncDir(o.dir)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// removeTemp deletes files a crashed flush left aside: those whose names
// start with prefix (marts.TempPrefix, or a partition's own temp prefix
// in a lake that other partitions write into at the same time).
func removeTemp(dir, prefix string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), prefix) {
			return os.Remove(path)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
