package aggregate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/jetfleet/jetfleet/workers"
)

// Tables of the state file. Records live in _jf_records; the dataset's
// name is a view over its schema columns, so mart SQL runs unchanged, and
// _jf_lake adds the ingest time for the lake's date fallback.
const (
	tableRecords = "_jf_records"
	tableMeta    = "_jf_meta"
	tableOutputs = "_jf_outputs"
	tableParts   = "_jf_parts"
	tableStage   = "_jf_stage"
	tableDropped = "_jf_dropped"
	viewLake     = "_jf_lake"
	// tableFiles lists the lake files a mart builder's state holds the
	// rows of (martbuild.go).
	tableFiles = "_jf_files"
)

// meta is the state's commit counter: every committed batch gets the next
// number, and records carry the batch they were committed in, so a flush
// knows exactly which records are new to it.
type meta struct {
	batch        int64
	committedSeq uint64
	records      int64
	duplicates   int64
}

func (a *Aggregator) schemaSQL() []string {
	ds := a.cfg.Dataset
	cols := make([]string, 0, len(ds.Schema))
	names := make([]string, 0, len(ds.Schema))
	for _, c := range ds.Schema {
		cols = append(cols, ident(c.Name)+" "+c.Type)
		names = append(names, ident(c.Name))
	}
	records := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (_jf_key VARCHAR PRIMARY KEY, %s, _jf_batch BIGINT NOT NULL, _jf_seq UBIGINT NOT NULL, _jf_ingested TIMESTAMPTZ NOT NULL)`,
		tableRecords, strings.Join(cols, ", "))
	if a.cfg.builder {
		// The lake's rows and the lake file (_jf_files.id) each came from.
		records = fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (%s, _jf_batch BIGINT NOT NULL, _jf_file BIGINT NOT NULL)`, tableRecords, strings.Join(cols, ", "))
	}
	stmts := []string{
		records,
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (batch BIGINT NOT NULL, committed_seq UBIGINT NOT NULL, records BIGINT NOT NULL, duplicates BIGINT NOT NULL)`, tableMeta),
		fmt.Sprintf(`INSERT INTO %[1]s SELECT 0, 0, 0, 0 WHERE NOT EXISTS (SELECT 1 FROM %[1]s)`, tableMeta),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (name VARCHAR NOT NULL, kind VARCHAR NOT NULL, fingerprint VARCHAR NOT NULL, flushed_batch BIGINT NOT NULL, last_seq UBIGINT NOT NULL, updated_at TIMESTAMPTZ, columns VARCHAR)`, tableOutputs),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (output VARCHAR NOT NULL, part VARCHAR NOT NULL, rows BIGINT NOT NULL, PRIMARY KEY (output, part))`, tableParts),
		// Stream messages whose record was dropped as a duplicate, so a
		// redelivery of one is not counted as a duplicate twice. As many
		// rows as duplicates, which are few.
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (_jf_key VARCHAR NOT NULL, _jf_seq UBIGINT NOT NULL, PRIMARY KEY (_jf_key, _jf_seq))`, tableDropped),
	}
	if a.cfg.builder {
		// The lake files ingested: path relative to the lake, stamp, and
		// the batch that read them. No index: it is joined with the
		// listing once per build.
		stmts[len(stmts)-1] = fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (id BIGINT NOT NULL, path VARCHAR NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, batch BIGINT NOT NULL)`, tableFiles)
	}
	return stmts
}

func (a *Aggregator) viewSQL() []string {
	names := make([]string, 0, len(a.cfg.Dataset.Schema))
	for _, c := range a.cfg.Dataset.Schema {
		names = append(names, ident(c.Name))
	}
	cols := strings.Join(names, ", ")
	stmts := []string{fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS SELECT %s FROM main.%s`, ident(a.cfg.Dataset.Name), cols, tableRecords)}
	if a.cfg.builder {
		return stmts // no lake output, no ingest time
	}
	return append(stmts, fmt.Sprintf(`CREATE OR REPLACE VIEW main.%s AS SELECT %s, _jf_ingested FROM main.%s`, viewLake, cols, tableRecords))
}

// pendingViewSQL shadows the dataset's views, on one connection, with
// views of the records committed in batches (since, upto].
func (a *Aggregator) pendingViewSQL(since, upto int64) []string {
	names := make([]string, 0, len(a.cfg.Dataset.Schema))
	for _, c := range a.cfg.Dataset.Schema {
		names = append(names, ident(c.Name))
	}
	cols := strings.Join(names, ", ")
	where := fmt.Sprintf("_jf_batch > %d AND _jf_batch <= %d", since, upto)
	stmts := []string{fmt.Sprintf(`CREATE OR REPLACE TEMP VIEW %s AS SELECT %s FROM main.%s WHERE %s`, ident(a.cfg.Dataset.Name), cols, tableRecords, where)}
	if a.cfg.builder {
		return stmts
	}
	return append(stmts, fmt.Sprintf(`CREATE OR REPLACE TEMP VIEW %s AS SELECT %s, _jf_ingested FROM main.%s WHERE %s`, viewLake, cols, tableRecords, where))
}

func (a *Aggregator) dropPendingViewSQL() []string {
	return []string{
		fmt.Sprintf(`DROP VIEW IF EXISTS temp.%s`, ident(a.cfg.Dataset.Name)),
		fmt.Sprintf(`DROP VIEW IF EXISTS temp.%s`, viewLake),
	}
}

// migrate adds schema columns the state table lacks (a column added to
// the pipeline file) and refuses a changed column type.
func (a *Aggregator) migrate(ctx context.Context, conn *sql.Conn) error {
	// pragma_table_info, not information_schema: a mart builder opens its
	// state for every build, and the latter takes tens of milliseconds.
	rows, err := conn.QueryContext(ctx, fmt.Sprintf(`SELECT name, type FROM pragma_table_info('main.%s')`, tableRecords))
	if err != nil {
		return err
	}
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return err
		}
		have[strings.ToLower(name)] = typ
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, c := range a.cfg.Dataset.Schema {
		if _, ok := have[strings.ToLower(c.Name)]; ok {
			continue
		}
		a.log.Info().Str("column", c.Name).Str("type", c.Type).Msg("adding column to state")
		if _, err := conn.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN %s %s`, tableRecords, ident(c.Name), c.Type)); err != nil {
			return fmt.Errorf("add column %s to state: %w", c.Name, err)
		}
	}
	return nil
}

func readMeta(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
},
) (meta, error) {
	var m meta
	err := q.QueryRowContext(ctx, fmt.Sprintf(`SELECT batch, committed_seq, records, duplicates FROM %s`, tableMeta)).
		Scan(&m.batch, &m.committedSeq, &m.records, &m.duplicates)
	return m, err
}

// ingestResult is what one committed batch changed.
type ingestResult struct {
	inserted, duplicates int64
	meta                 meta
}

// staged is one decoded record ready for the appender.
type staged struct {
	index int
	row   []driver.Value
}

// decode turns a batch into appender rows and rejects: a record that is
// not a JSON object, lacks its key, or has a field of the wrong type.
func (a *Aggregator) decode(batch []workers.Record) ([]staged, []workers.Reject, uint64) {
	out := make([]staged, 0, len(batch))
	var rejected []workers.Reject
	var maxSeq uint64
	schema := a.cfg.Dataset.Schema
	fields := map[string]json.RawMessage{}
	for i, rec := range batch {
		maxSeq = max(maxSeq, rec.Seq)
		clear(fields)
		if err := json.Unmarshal(rec.Data, &fields); err != nil {
			rejected = append(rejected, workers.Reject{Index: i, Err: fmt.Errorf("aggregate: record is not a JSON object: %w", err)})
			continue
		}
		rawKey, ok := fields[a.cfg.Dataset.Key]
		if !ok || isNull(rawKey) {
			rejected = append(rejected, workers.Reject{Index: i, Err: fmt.Errorf("aggregate: record has no key field %q", a.cfg.Dataset.Key)})
			continue
		}
		key, _, err := fieldString(rawKey)
		if err != nil || key == "" {
			rejected = append(rejected, workers.Reject{Index: i, Err: fmt.Errorf("aggregate: record has an empty key field %q", a.cfg.Dataset.Key)})
			continue
		}
		row := make([]driver.Value, 0, len(schema)+4)
		row = append(row, key)
		var bad error
		for c, col := range schema {
			raw, ok := fields[col.Name]
			if !ok || isNull(raw) {
				row = append(row, nil)
				continue
			}
			v, err := a.conv[c](raw)
			if err != nil {
				bad = fmt.Errorf("aggregate: field %s (%s): %w", col.Name, col.Type, err)
				break
			}
			row = append(row, v)
		}
		if bad != nil {
			rejected = append(rejected, workers.Reject{Index: i, Err: bad})
			continue
		}
		published := rec.Published
		if published.IsZero() {
			published = time.Now()
		}
		row = append(row, rec.Seq, int64(i), published.UTC(), int64(rec.Index))
		out = append(out, staged{index: i, row: row})
	}
	return out, rejected, maxSeq
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

// ingest appends rows to the stage table and, in one transaction, moves
// the ones with unseen keys into the records and advances the meta.
func (a *Aggregator) ingest(ctx context.Context, conn *sql.Conn, rows []staged, maxSeq uint64, prev meta) (ingestResult, error) {
	if _, err := conn.ExecContext(ctx, "DELETE FROM temp."+tableStage); err != nil {
		return ingestResult{}, fmt.Errorf("clear stage: %w", err)
	}
	if err := a.appendStage(ctx, conn, rows); err != nil {
		return ingestResult{}, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return ingestResult{}, err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	next := prev
	next.batch++
	next.committedSeq = max(prev.committedSeq, maxSeq)
	var inserted int64
	if len(rows) > 0 {
		res, err := tx.ExecContext(ctx, a.insertSQL, next.batch)
		if err != nil {
			return ingestResult{}, fmt.Errorf("insert: %w", err)
		}
		inserted, _ = res.RowsAffected()
	}
	dups := int64(len(rows)) - inserted
	if dups > 0 {
		// A redelivered record (crash between commit and ack, or acks a
		// killed server forgot) is not a duplicate: it is the same stream
		// message again. Counting it would break clean + dead +
		// duplicates = published. Only asked when something was dropped,
		// so the common batch pays nothing.
		redelivered, err := countRedelivered(ctx, tx, next.batch)
		if err != nil {
			return ingestResult{}, err
		}
		dups -= redelivered
	}
	next.records += inserted
	next.duplicates += dups
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`UPDATE %s SET batch = ?, committed_seq = ?, records = ?, duplicates = ?`, tableMeta),
		next.batch, next.committedSeq, next.records, next.duplicates); err != nil {
		return ingestResult{}, fmt.Errorf("update meta: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return ingestResult{}, fmt.Errorf("commit: %w", err)
	}
	return ingestResult{inserted: inserted, duplicates: dups, meta: next}, nil
}

// countRedelivered counts the staged records that are a stream message
// seen before rather than a duplicate, and remembers the ones dropped as
// duplicates for next time. A staged record is seen before when an
// earlier batch committed its message (its key is in the records or in
// the dropped table under the same stream sequence), or when its message
// was fetched twice into this batch (same key, sequence and index in the
// message; two records of one bulk message with one key are a real
// duplicate). It runs in the ingest transaction after the insert, which
// wrote batch.
func countRedelivered(ctx context.Context, tx *sql.Tx, batch int64) (int64, error) {
	var n int64
	err := tx.QueryRowContext(ctx, fmt.Sprintf(`WITH s AS (
  SELECT _jf_key, _jf_seq, count(*) AS copies, count(DISTINCT _jf_idx) AS records FROM temp.%[1]s GROUP BY ALL
)
SELECT CAST(coalesce(sum(CASE
  WHEN r._jf_batch < $1 OR d._jf_key IS NOT NULL THEN s.copies
  WHEN r._jf_batch = $1 THEN s.copies - s.records
  ELSE 0 END), 0) AS BIGINT)
FROM s
LEFT JOIN main.%[2]s r ON r._jf_key = s._jf_key AND r._jf_seq = s._jf_seq
LEFT JOIN main.%[3]s d ON d._jf_key = s._jf_key AND d._jf_seq = s._jf_seq`, tableStage, tableRecords, tableDropped), batch).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count redelivered records: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO main.%[3]s
SELECT DISTINCT s._jf_key, s._jf_seq FROM temp.%[1]s s
WHERE NOT EXISTS (SELECT 1 FROM main.%[2]s r WHERE r._jf_key = s._jf_key AND r._jf_seq = s._jf_seq)
ON CONFLICT DO NOTHING`, tableStage, tableRecords, tableDropped)); err != nil {
		return 0, fmt.Errorf("remember dropped duplicates: %w", err)
	}
	return n, nil
}

func (a *Aggregator) stageSQL() string {
	cols := make([]string, 0, len(a.cfg.Dataset.Schema))
	for _, c := range a.cfg.Dataset.Schema {
		cols = append(cols, ident(c.Name)+" "+c.Type)
	}
	return fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s (_jf_key VARCHAR, %s, _jf_seq UBIGINT, _jf_ord BIGINT, _jf_ingested TIMESTAMPTZ, _jf_idx BIGINT)`, tableStage, strings.Join(cols, ", "))
}

// buildInsertSQL keeps the first record per key within the batch and
// drops keys the state has already seen.
func (a *Aggregator) buildInsertSQL() string {
	names := make([]string, 0, len(a.cfg.Dataset.Schema))
	for _, c := range a.cfg.Dataset.Schema {
		names = append(names, ident(c.Name))
	}
	cols := strings.Join(names, ", ")
	return fmt.Sprintf(`INSERT INTO main.%s (_jf_key, %s, _jf_batch, _jf_seq, _jf_ingested)
SELECT _jf_key, %s, $1, _jf_seq, _jf_ingested FROM temp.%s
QUALIFY row_number() OVER (PARTITION BY _jf_key ORDER BY _jf_ord) = 1
ON CONFLICT DO NOTHING`, tableRecords, cols, cols, tableStage)
}

// appendStage loads the decoded rows into the temp stage table.
func (a *Aggregator) appendStage(_ context.Context, conn *sql.Conn, rows []staged) error {
	if len(rows) == 0 {
		return nil
	}
	err := conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppender(dc.(*duckdb.Conn), "temp", "main", tableStage)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := app.AppendRow(r.row...); err != nil {
				app.Close()
				return fmt.Errorf("append record %d: %w", r.index, err)
			}
		}
		return app.Close()
	})
	if err != nil {
		return fmt.Errorf("stage: %w", err)
	}
	return nil
}
