package main_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/aggregate/aggregatetest"
)

// smokeDataDir folds the smoke test's clean records (three orders and a
// duplicate) into marts with the aggregator, as `jetfleet dev` would.
func smokeDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ds := aggregate.DatasetConfig{Name: "orders", Key: "order_id", Schema: []aggregate.Column{
		{Name: "order_id", Type: "VARCHAR"},
		{Name: "customer_id", Type: "VARCHAR"},
		{Name: "amount", Type: "DOUBLE"},
		{Name: "currency", Type: "VARCHAR"},
		{Name: "amount_usd", Type: "DOUBLE"},
		{Name: "country", Type: "VARCHAR"},
		{Name: "ts", Type: "TIMESTAMPTZ"},
		{Name: "email_hash", Type: "VARCHAR"},
	}}
	ms := []aggregate.Mart{
		{Name: "daily_sales", Dataset: "orders", PartitionBy: []string{"day"}, SQL: `SELECT CAST(ts AT TIME ZONE 'UTC' AS DATE) AS day, country,
  count(*) AS orders, sum(amount_usd) AS revenue_usd, sum(amount_usd) / count(*) AS aov_usd FROM orders GROUP BY 1, 2`},
		{Name: "customer_ltv", Dataset: "orders", SQL: `SELECT customer_id, count(*) AS orders, sum(amount_usd) AS revenue_usd,
  min(ts) AS first_order, max(ts) AS last_order FROM orders GROUP BY customer_id`},
	}
	aggregatetest.Fold(t, dir, ds, ms,
		[]byte(`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"USD","amount_usd":10,"country":"US","ts":"2026-10-01T10:00:00Z"}`),
		[]byte(`{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","amount_usd":21.6,"country":"DE","ts":"2026-10-02T01:30:00Z"}`),
		[]byte(`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":"GBP","amount_usd":6.985,"country":"GB","ts":"2026-10-02T07:00:00Z","email_hash":"ab12"}`),
		[]byte(`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"USD","amount_usd":10,"country":"US","ts":"2026-10-01T10:00:00Z"}`),
	)
	return dir
}

func TestQueryCommand(t *testing.T) {
	t.Parallel()
	dir := smokeDataDir(t)

	// The smoke test's two checks, byte for byte.
	out, code := jf(t, nil, "query", "--data-dir", dir, "--format", "csv",
		"SELECT strftime(day, '%Y-%m-%d') AS day, country, orders, printf('%.3f', revenue_usd) AS rev FROM daily_sales ORDER BY day, country")
	require.Equal(t, 0, code, out)
	require.Equal(t, "day,country,orders,rev\n2026-10-01,US,1,10.000\n2026-10-02,DE,1,21.600\n2026-10-02,GB,1,6.985\n", out)
	out, code = jf(t, nil, "query", "--data-dir", dir, "--format", "csv",
		"SELECT customer_id, orders, printf('%.3f', revenue_usd) AS rev FROM customer_ltv ORDER BY customer_id")
	require.Equal(t, 0, code, out)
	require.Equal(t, "customer_id,orders,rev\nc-1,2,31.600\nc-2,1,6.985\n", out)

	out, code = jf(t, nil, "query", "--data-dir", dir, "SELECT country, orders FROM daily_sales ORDER BY country")
	require.Equal(t, 0, code, out)
	require.Equal(t, "country  orders\n-------  ------\nDE            1\nGB            1\nUS            1\n(3 rows)\n", out)

	out, code = jf(t, nil, "query", "--data-dir", dir, "--format", "json", "SELECT order_id, ts FROM orders WHERE email_hash IS NOT NULL")
	require.Equal(t, 0, code, out)
	require.Equal(t, "[\n  {\"order_id\": \"s-3\", \"ts\": \"2026-10-02T07:00:00Z\"}\n]\n", out)

	// No SQL: the views and their freshness.
	out, code = jf(t, nil, "query", "--data-dir", dir, "--format", "csv")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "customer_ltv,mart,2,1,")
	require.Contains(t, out, "daily_sales,mart,3,2,")
	require.Contains(t, out, "orders,lake,3,1,") // one month

	out, code = jf(t, nil, "query", "--data-dir", dir, "DELETE FROM daily_sales")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "not allowed")
	out, code = jf(t, nil, "query", "--data-dir", dir, "SELECT * FROM read_text('/etc/hostname')")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "disabled by configuration")
	out, code = jf(t, nil, "query", "--data-dir", dir, "--format", "xml", "SELECT 1")
	require.Equal(t, 2, code, out)
}

func TestProfileCommand(t *testing.T) {
	t.Parallel()
	dir := smokeDataDir(t)
	out, code := jf(t, nil, "profile", "--data-dir", dir, "--format", "csv", "orders")
	require.Equal(t, 0, code, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 11) // header, 8 schema columns, date, month
	require.True(t, strings.HasPrefix(lines[9], "date,DATE,2026-10-01,2026-10-02,"), lines[9])
	require.True(t, strings.HasPrefix(lines[10], "month,VARCHAR,2026-10,2026-10,1,"), lines[10])
	require.True(t, strings.HasPrefix(lines[0], "column_name,column_type,min,max,approx_unique"), lines[0])
	require.True(t, strings.HasPrefix(lines[8], "email_hash,VARCHAR,ab12,ab12,1,"), lines[8])
	require.True(t, strings.HasSuffix(lines[8], ",3,66.67"), lines[8]) // 2 of 3 NULL

	out, code = jf(t, nil, "profile", "--data-dir", dir, "nope")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "no such mart or dataset")
}
