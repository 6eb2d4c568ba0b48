package aggregate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// Marts of each kind the builder keeps: incremental ones (the shop's) and
// ones it recomputes from the lake (not decomposable), partitioned and not.
func allKindsOfMarts() []Mart {
	return append(shopMarts(),
		Mart{Name: "country_median", Dataset: "orders", SQL: `SELECT country, median(amount_usd) AS median_usd, count(*) AS orders FROM orders GROUP BY country`},
		Mart{
			Name: "daily_customers", Dataset: "orders", PartitionBy: []string{"day"},
			SQL: `SELECT CAST(ts AS DATE) AS day, count(DISTINCT customer_id) AS customers FROM orders GROUP BY 1`,
		},
	)
}

// requireMartsMatchBatch checks every mart against its SQL run by DuckDB
// once over the distinct records: the batch job the marts replace.
func requireMartsMatchBatch(t *testing.T, dataDir string, ms []Mart, distinct []order) {
	t.Helper()
	db, err := duckdb.Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	file := filepath.Join(t.TempDir(), "distinct.ndjson")
	var lines []string
	for _, o := range distinct {
		b, err := json.Marshal(o)
		require.NoError(t, err)
		lines = append(lines, string(b))
	}
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	ds := shopDataset()
	cols := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = duckdb.Literal(c.Name) + ": " + duckdb.Literal(c.Type)
	}
	_, err = db.Exec(fmt.Sprintf("CREATE TABLE orders AS SELECT * FROM read_json(%s, format = 'newline_delimited', columns = {%s})", duckdb.Literal(file), strings.Join(cols, ", ")))
	require.NoError(t, err)
	for _, m := range ms {
		want := queryRows(t, db, "SELECT * FROM ("+m.SQL+") ORDER BY ALL")
		man, err := marts.ReadManifest(marts.MartPath(dataDir, m.Name))
		require.NoError(t, err, m.Name)
		names := make([]string, len(man.Columns))
		for i, c := range man.Columns {
			names[i] = fmt.Sprintf("CAST(%s AS %s)", duckdb.Ident(c.Name), c.Type)
		}
		src := fmt.Sprintf("read_parquet(%s)", duckdb.Literal(filepath.Join(man.Dir, marts.DataFile)))
		if len(m.PartitionBy) > 0 {
			src = fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types_autocast = false)", duckdb.Literal(filepath.Join(man.Dir, "**", marts.DataFile)))
		}
		got := queryRows(t, db, fmt.Sprintf("SELECT %s FROM %s ORDER BY ALL", strings.Join(names, ", "), src))
		require.Len(t, got, len(want), "mart %s rows", m.Name)
		for i := range want {
			for j := range want[i] {
				require.True(t, sameCell(want[i][j], got[i][j]), "mart %s row %d column %s: want %v, got %v", m.Name, i, man.Columns[j].Name, want[i][j], got[i][j])
			}
		}
		require.Equal(t, int64(len(want)), man.Rows, "mart %s manifest rows", m.Name)
	}
}

func queryRows(t *testing.T, db *sql.DB, q string) [][]any {
	t.Helper()
	rows, err := db.Query(q)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		out = append(out, vals)
	}
	require.NoError(t, rows.Err())
	return out
}

func sameCell(a, b any) bool {
	if x, ok := a.(float64); ok {
		y, ok := b.(float64)
		return ok && (x == y || math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(x)))
	}
	if x, ok := a.(time.Time); ok {
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return reflect.DeepEqual(a, b)
}

// builderBundle is the aggregate step of one process: its engine, intake
// (partitions 0 and 1) and builder, driven by hand: nothing runs in the
// background.
type builderBundle struct {
	t       *testing.T
	dataDir string
	ms      []Mart
	eng     *Engine
	in      *Intake
	b       *MartBuilder
	seq     uint64
}

func newBuilderBundle(t *testing.T, dataDir string, ms []Mart) *builderBundle {
	t.Helper()
	return newBuilderBundleLog(t, dataDir, ms, testLog(t))
}

func newBuilderBundleLog(t *testing.T, dataDir string, ms []Mart, log zerolog.Logger) *builderBundle {
	t.Helper()
	eng, err := OpenEngine(EngineConfig{MemoryLimit: "256MB", Threads: 1, TempDir: filepath.Join(t.TempDir(), "duck")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = eng.Close() })
	b, err := NewMartBuilder(MartBuilderConfig{
		Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Marts: ms,
		FlushRecords: 1 << 30, FlushInterval: time.Hour, CheckpointInterval: time.Hour, Logger: log,
	})
	require.NoError(t, err)
	in, err := NewIntake(IntakeConfig{Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Builder: b, Logger: testLog(t)})
	require.NoError(t, err)
	for p := range 2 {
		require.NoError(t, in.OpenPartition(t.Context(), p))
	}
	return &builderBundle{t: t, dataDir: dataDir, ms: ms, eng: eng, in: in, b: b, seq: 1_000_000}
}

// feed commits records through the partitions their keys fall in.
func (bb *builderBundle) feed(records [][]byte) {
	bb.t.Helper()
	for p, part := range splitByKey(records, 2) {
		batch := make([]workers.Record, 0, len(part))
		for _, r := range part {
			bb.seq++
			batch = append(batch, rec(string(r), bb.seq, 0))
		}
		_, err := batchHandler{in: bb.in, p: p}.HandleBatch(bb.t.Context(), batch)
		require.NoError(bb.t, err)
	}
}

// build flushes the lake and folds it into the marts, writing them.
func (bb *builderBundle) build() {
	bb.t.Helper()
	require.NoError(bb.t, bb.in.Flush(bb.t.Context()))
	require.NoError(bb.t, bb.b.Build(bb.t.Context()))
}

func (bb *builderBundle) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(bb.t, bb.in.Stop(ctx))
	require.NoError(bb.t, bb.b.Stop(ctx))
}

// crashBuilder lets the build go as a killed process would: nothing
// written, no checkpoint.
func (bb *builderBundle) crashBuilder() {
	bb.b.buildMu.Lock()
	defer bb.b.buildMu.Unlock()
	require.NoError(bb.t, bb.b.release())
}

func TestMartBuilderKeepsEveryKindOfMart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ms := allKindsOfMarts()
	bb := newBuilderBundle(t, dir, ms)
	distinct, stream := genOrders(3, 3000)
	third := len(stream) / 3
	bb.feed(stream[:third])
	bb.build()
	bb.feed(stream[third : 2*third])
	bb.build()
	bb.feed(stream[2*third:])
	bb.stop()
	requireMartsMatchBatch(t, dir, ms, distinct)
	requireShopMarts(t, dir, distinct)
}

// TestMartBuilderRestarts stops the builder at a checkpoint, later crashes
// it between checkpoints, and changes a mart's definition: each time a new
// builder picks up from the checkpoint and the lake's log, and the marts
// equal the batch result.
func TestMartBuilderRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ms := allKindsOfMarts()
	distinct, stream := genOrders(5, 4000)
	quarter := len(stream) / 4

	bb := newBuilderBundle(t, dir, ms)
	bb.feed(stream[:quarter])
	bb.build()
	bb.stop() // checkpoints
	cp, err := readCheckpoint(dir, "orders")
	require.NoError(t, err)
	require.Equal(t, uint64(1), cp.Gen)
	entries, err := readLakeEntries(dir, "orders", nil)
	require.NoError(t, err)
	require.Empty(t, entries, "the checkpoint covers the log, which is trimmed")

	bb = newBuilderBundle(t, dir, ms)
	bb.feed(stream[quarter : 2*quarter])
	bb.build()
	bb.feed(stream[2*quarter : 3*quarter])
	require.NoError(t, bb.in.Flush(t.Context()))
	bb.crashBuilder() // marts written once since the checkpoint, a flush not folded
	require.NoError(t, bb.in.Stop(t.Context()))

	changed := slices.Clone(ms)
	changed[1].SQL = `SELECT customer_id, count(*) AS orders, sum(amount_usd) AS revenue_usd, max(amount_usd) AS biggest_usd FROM orders GROUP BY customer_id`
	bb = newBuilderBundle(t, dir, changed)
	bb.feed(stream[3*quarter:])
	bb.stop()
	requireMartsMatchBatch(t, dir, changed, distinct)
}

// syncLog is a log sink a test reads while the builder writes it.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMartBuilderShowsRebuild changes a mart's SQL on a data dir with
// records: the log and the manifest (what status reads) say the mart is
// being rebuilt from the lake while its old files still serve, then that
// it was, and the rebuilt mart equals the batch query.
func TestMartBuilderShowsRebuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ms := allKindsOfMarts()
	distinct, stream := genOrders(3, 1500)
	half := len(stream) / 2
	bb := newBuilderBundle(t, dir, ms)
	bb.feed(stream[:half])
	bb.build()
	bb.stop()
	before, err := marts.ReadManifest(marts.MartPath(dir, ms[1].Name))
	require.NoError(t, err)
	require.Empty(t, before.Rebuilding)
	require.Nil(t, before.RebuiltAt, "a mart computed as records came is no rebuild")

	changed := slices.Clone(ms)
	changed[1].SQL = `SELECT customer_id, count(*) AS orders, max(amount_usd) AS biggest_usd FROM orders GROUP BY customer_id`
	var log syncLog
	bb = newBuilderBundleLog(t, dir, changed, zerolog.New(&log))
	bb.b.buildMu.Lock()
	locked, err := bb.b.acquire(t.Context()) // take the build over, as a starting aggregator does
	bb.b.buildMu.Unlock()
	require.NoError(t, err)
	require.True(t, locked)
	require.Contains(t, log.String(), `"mart":"`+ms[1].Name+`","lake_rows":`)
	require.Contains(t, log.String(), `"message":"mart definition changed: rebuilding it from the lake"`)
	during, err := marts.ReadManifest(marts.MartPath(dir, ms[1].Name))
	require.NoError(t, err)
	require.Equal(t, "definition changed", during.Rebuilding)
	require.Equal(t, before.Columns, during.Columns, "the old files keep their columns until the rebuilt mart is written")
	other, err := marts.ReadManifest(marts.MartPath(dir, ms[0].Name))
	require.NoError(t, err)
	require.Empty(t, other.Rebuilding, "an unchanged mart is not rebuilt")

	bb.feed(stream[half:])
	bb.build()
	after, err := marts.ReadManifest(marts.MartPath(dir, ms[1].Name))
	require.NoError(t, err)
	require.Empty(t, after.Rebuilding)
	require.NotNil(t, after.RebuiltAt)
	require.Contains(t, log.String(), `"message":"mart rebuilt from the lake"`)
	require.NotContains(t, log.String(), `"mart":"`+ms[0].Name+`","rows"`, "only the changed mart is rebuilt")
	bb.stop()
	requireMartsMatchBatch(t, dir, changed, distinct)
	kept, err := marts.ReadManifest(marts.MartPath(dir, ms[1].Name))
	require.NoError(t, err)
	require.Equal(t, after.RebuiltAt, kept.RebuiltAt, "later writes keep when it was rebuilt")
}
