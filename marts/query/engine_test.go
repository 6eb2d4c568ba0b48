package query_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/marts/query"
)

type testBundle struct {
	dataDir string
	engine  *query.Engine
}

// setup writes the smoke test's marts as the aggregator would: Hive
// partitions without the partition column, and manifests.
func setup(t *testing.T) *testBundle {
	t.Helper()
	dataDir := t.TempDir()
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	write := func(path, sel string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		_, err := db.Exec("COPY (" + sel + ") TO '" + path + "' (FORMAT parquet)")
		require.NoError(t, err)
	}
	ds := marts.MartPath(dataDir, "daily_sales")
	write(filepath.Join(ds, "day=2026-10-01", "data.parquet"), `SELECT 'US' AS country, 1::BIGINT AS orders, 10.0::DOUBLE AS revenue_usd, 10.0::DOUBLE AS aov_usd`)
	write(filepath.Join(ds, "day=2026-10-02", "data.parquet"), `SELECT * FROM (VALUES ('DE', 1::BIGINT, 21.6::DOUBLE, 21.6::DOUBLE), ('GB', 1, 6.985, 6.985)) v(country, orders, revenue_usd, aov_usd)`)
	now := time.Now().UTC()
	require.NoError(t, marts.WriteManifest(marts.Manifest{
		Name: "daily_sales", Kind: marts.KindMart, Dataset: "orders", Dir: ds, PartitionBy: []string{"day"},
		Columns: []marts.Column{{Name: "day", Type: "DATE"}, {Name: "country", Type: "VARCHAR"}, {Name: "orders", Type: "BIGINT"}, {Name: "revenue_usd", Type: "DOUBLE"}, {Name: "aov_usd", Type: "DOUBLE"}},
		Rows:    3, Partitions: 2, UpdatedAt: now, LastSeq: 8,
	}))
	cl := marts.MartPath(dataDir, "customer_ltv")
	write(filepath.Join(cl, "data.parquet"), `SELECT * FROM (VALUES ('c-1', 2::BIGINT, 31.6::DOUBLE, TIMESTAMPTZ '2026-10-01 10:00:00+00', TIMESTAMPTZ '2026-10-02 01:30:00+00'),
		('c-2', 1, 6.985, TIMESTAMPTZ '2026-10-02 07:00:00+00', TIMESTAMPTZ '2026-10-02 07:00:00+00')) v(customer_id, orders, revenue_usd, first_order, last_order)`)
	require.NoError(t, marts.WriteManifest(marts.Manifest{
		Name: "customer_ltv", Kind: marts.KindMart, Dataset: "orders", Dir: cl,
		Columns: []marts.Column{{Name: "customer_id", Type: "VARCHAR"}, {Name: "orders", Type: "BIGINT"}, {Name: "revenue_usd", Type: "DOUBLE"}, {Name: "first_order", Type: "TIMESTAMP WITH TIME ZONE"}, {Name: "last_order", Type: "TIMESTAMP WITH TIME ZONE"}},
		Rows:    2, Partitions: 1, UpdatedAt: now, LastSeq: 8,
	}))
	// A mart that never got rows: an empty view of the right shape.
	require.NoError(t, marts.WriteManifest(marts.Manifest{
		Name: "refunds", Kind: marts.KindMart, Dataset: "orders", Dir: marts.MartPath(dataDir, "refunds"),
		Columns: []marts.Column{{Name: "day", Type: "DATE"}, {Name: "n", Type: "BIGINT"}}, PartitionBy: []string{"day"},
	}))
	// A file outside the marts that a query must not reach.
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, "secret.csv"), []byte("a,b\n1,2\n"), 0o600))

	e, err := query.Open(t.Context(), query.Config{DataDir: dataDir})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return &testBundle{dataDir: dataDir, engine: e}
}

func (b *testBundle) run(t *testing.T, q string, f query.Format) string {
	t.Helper()
	res, err := b.engine.Query(t.Context(), q)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, res.Write(&buf, f))
	return buf.String()
}

func TestQuerySmokeCSV(t *testing.T) {
	t.Parallel()
	b := setup(t)
	got := b.run(t, `SELECT strftime(day, '%Y-%m-%d') AS day, country, orders, printf('%.3f', revenue_usd) AS rev FROM daily_sales ORDER BY day, country`, query.FormatCSV)
	require.Equal(t, "day,country,orders,rev\n2026-10-01,US,1,10.000\n2026-10-02,DE,1,21.600\n2026-10-02,GB,1,6.985\n", got)
	got = b.run(t, `SELECT customer_id, orders, printf('%.3f', revenue_usd) AS rev FROM customer_ltv ORDER BY customer_id`, query.FormatCSV)
	require.Equal(t, "customer_id,orders,rev\nc-1,2,31.600\nc-2,1,6.985\n", got)
}

func TestQueryFormats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	q := `SELECT * FROM daily_sales ORDER BY day, country`
	require.Equal(t, "day,country,orders,revenue_usd,aov_usd\n2026-10-01,US,1,10,10\n2026-10-02,DE,1,21.6,21.6\n2026-10-02,GB,1,6.985,6.985\n", b.run(t, q, query.FormatCSV))
	require.Equal(t, `[
  {"day": "2026-10-01", "country": "US", "orders": 1, "revenue_usd": 10, "aov_usd": 10},
  {"day": "2026-10-02", "country": "DE", "orders": 1, "revenue_usd": 21.6, "aov_usd": 21.6},
  {"day": "2026-10-02", "country": "GB", "orders": 1, "revenue_usd": 6.985, "aov_usd": 6.985}
]
`, b.run(t, q, query.FormatJSON))
	require.Equal(t, `day         country  orders  revenue_usd  aov_usd
----------  -------  ------  -----------  -------
2026-10-01  US            1           10       10
2026-10-02  DE            1         21.6     21.6
2026-10-02  GB            1        6.985    6.985
(3 rows)
`, b.run(t, q, query.FormatTable))
	require.Equal(t, "customer_id,first_order\nc-1,2026-10-01T10:00:00Z\n", b.run(t, `SELECT customer_id, first_order FROM customer_ltv WHERE orders = 2`, query.FormatCSV))
	require.Equal(t, "[]\n", b.run(t, `SELECT * FROM refunds`, query.FormatJSON))
	require.Equal(t, "day,n\n", b.run(t, `SELECT * FROM refunds`, query.FormatCSV))
}

func TestQueryRefusesAndLocksDown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, q := range []string{
		"DROP VIEW daily_sales",
		"CREATE TABLE x AS SELECT 1",
		"COPY daily_sales TO '/tmp/x.csv'",
		"ATTACH '/tmp/x.duckdb'",
		"SET enable_external_access = true",
		"INSTALL httpfs",
		"SELECT 1; DROP VIEW daily_sales",
		"",
	} {
		_, err := b.engine.Query(t.Context(), q)
		require.ErrorIs(t, err, query.ErrNotAllowed, q)
	}
	for _, q := range []string{
		"SELECT * FROM read_csv('" + filepath.Join(b.dataDir, "secret.csv") + "')",
		"SELECT * FROM read_text('/etc/passwd')",
		"SELECT * FROM glob('/etc/*')",
		"WITH x AS (SELECT 1) SELECT * FROM read_parquet('/nonexistent/*.parquet')",
	} {
		_, err := b.engine.Query(t.Context(), q)
		require.Error(t, err, q)
		require.NotErrorIs(t, err, query.ErrNotAllowed, q)
	}
	// The views still work after the lock-down, and so do these.
	for _, q := range []string{"DESCRIBE daily_sales", "SUMMARIZE customer_ltv", "FROM daily_sales", "  -- c\n(SELECT 1)", "WITH d AS (SELECT * FROM daily_sales) SELECT count(*) FROM d"} {
		_, err := b.engine.Query(t.Context(), q)
		require.NoError(t, err, q)
	}
}

func TestProfile(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res, err := b.engine.Profile(t.Context(), "daily_sales")
	require.NoError(t, err)
	require.Len(t, res.Rows, 5)
	require.Equal(t, "column_name", res.Columns[0].Name)
	_, err = b.engine.Profile(t.Context(), "nope")
	require.ErrorIs(t, err, query.ErrUnknownTable)
	require.ErrorContains(t, err, "daily_sales")
}

func TestHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	srv := httptestServer(t, query.Handler(query.HandlerConfig{Engine: query.Config{DataDir: b.dataDir}}))
	body := httpGet(t, srv+"?format=csv&q="+urlQuery("SELECT customer_id FROM customer_ltv ORDER BY 1"), 200)
	require.Equal(t, "customer_id\nc-1\nc-2\n", body)
	body = httpGet(t, srv+"?q="+urlQuery("DELETE FROM customer_ltv"), 400)
	require.Contains(t, body, "not allowed", body)
}

func TestOpenEmptyDataDir(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	e, err := query.Open(ctx, query.Config{DataDir: t.TempDir()})
	require.NoError(t, err)
	defer e.Close()
	require.Empty(t, e.Tables())
	_, err = e.Query(ctx, "SELECT * FROM daily_sales")
	require.ErrorContains(t, err, "daily_sales")
}
