package aggregate

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/pipeline"
)

// incrSchema is the dataset of the hand-written shapes: group keys with
// few values and NULLs (k = 'z' has NULL in every measure), integers with
// negatives, BIGINTs whose sums overflow BIGINT, decimals, doubles, and
// column names that need quoting.
var incrSchema = []incrColumn{
	{Name: "id", Type: "BIGINT"},
	{Name: "k", Type: "VARCHAR"},
	{Name: "k2", Type: "INTEGER"},
	{Name: "i", Type: "INTEGER"},
	{Name: "big", Type: "BIGINT"},
	{Name: "d", Type: "DECIMAL(18,4)"},
	{Name: "x", Type: "DOUBLE"},
	{Name: "flag", Type: "BOOLEAN"},
	{Name: "ts", Type: "TIMESTAMPTZ"},
	{Name: "s", Type: "VARCHAR"},
	{Name: "Amount USD", Type: "DOUBLE"},
	{Name: "group", Type: "VARCHAR"},
}

// incrShapes are incremental marts over incrSchema; aggs, when set, is the
// number of partial aggregates the plan must have (duplicates merged).
var incrShapes = []struct {
	name, dataset, sql string
	partitionBy        []string
	aggs               int
}{
	{name: "global", sql: `SELECT count(*) AS n, sum(i) AS si, min(x) AS mn, max(s) AS mx, avg(d) AS ad FROM t`},
	{name: "global_no_rows", sql: `SELECT count(*) AS n, count(x) AS cx, sum(x) AS sx, avg(i) AS ai, min(ts) AS mt FROM t WHERE k = 'none'`},
	{name: "group_by_column", sql: `SELECT k, count(*), count(x), sum(x), min(x), max(x) FROM t GROUP BY k`},
	{name: "avg_every_type", sql: `SELECT k, avg(i) AS ai, avg(d) AS ad, avg(x) AS ax, mean(big) AS mb, avg(k2) AS ak FROM t GROUP BY ALL`},
	{name: "sum_widening", sql: `SELECT k2, sum(big) AS sb, sum(i) AS si, sum(d) AS sd, sum(k2) AS sk FROM t GROUP BY k2`},
	{name: "exprs_over_aggs", sql: `SELECT k, sum(x) / count(*) AS r, round(avg(x), 4) AS ra, 100 * (sum(x) - min(x)) AS spread, sum(i) * 2 + count(*) AS mix FROM t GROUP BY 1`},
	{name: "aggs_in_case", sql: `SELECT k, CASE WHEN count(*) > 5 THEN sum(i) ELSE -1 END AS c, sum(CASE WHEN flag THEN 1 ELSE 0 END) AS flags, CASE WHEN max(x) > 0 THEN 'up' WHEN min(x) < 0 THEN 'down' END AS dir FROM t GROUP BY k`},
	{name: "constant_items", sql: `SELECT 'v1' AS version, k, 42 AS answer, NULL AS nothing, count(*) AS n, 1.5 AS half FROM t GROUP BY ALL`},
	{name: "expression_groups", sql: `SELECT CAST(timezone('UTC', ts) AS DATE) AS day, date_trunc('hour', ts) AS hour, count(*) AS n, sum(x) AS sx FROM t GROUP BY ALL`, partitionBy: []string{"day"}},
	{name: "group_by_alias", sql: `SELECT CAST(timezone('UTC', ts) AS DATE) AS day, sum(i) AS si FROM t GROUP BY day`, partitionBy: []string{"day"}},
	{name: "group_by_position", sql: `SELECT k2 % 2 AS parity, k, count(*) AS n FROM t GROUP BY 1, 2`, partitionBy: []string{"k", "parity"}},
	{name: "same_aggregate_twice", sql: `SELECT k, sum(x) AS a, sum(x) AS b, sum(x) * 2 AS c, avg(x) AS av, count(x) AS cx, SUM(X) AS e FROM t GROUP BY k`, aggs: 2},
	{name: "where_with_functions", sql: `SELECT k, count(*) AS n, sum(i) AS si FROM t WHERE lower(coalesce(s, '')) LIKE '%a%' AND abs(i) > 10 GROUP BY k`},
	{name: "having_other_aggs", sql: `SELECT k, count(*) AS n FROM t GROUP BY k HAVING sum(i) > 0 AND max(x) > -500`},
	{name: "having_alias", sql: `SELECT k, count(*) AS n FROM t GROUP BY k HAVING n > 3`},
	{name: "quoted_identifiers", sql: `SELECT "group", sum("Amount USD") AS "Total USD", count(*) AS "select", max("Amount USD") FROM t GROUP BY "group"`},
	{name: "table_alias", sql: `SELECT o.k, sum(o.x) AS sx, max(o."Amount USD") AS mx, count(o.i) FROM t o GROUP BY o.k`},
	{name: "dataset_qualified", sql: `SELECT t.k, count(t.i) AS ci, sum(t.d) AS sd FROM t GROUP BY t.k`},
	{name: "schema_qualified", sql: `SELECT k, count(*) AS n FROM main.t WHERE main.t.i > 0 GROUP BY k`},
	{name: "quoted_dataset", dataset: "line items", sql: `SELECT k, sum(i) AS si, count(*) AS n FROM "line items" AS li WHERE li.flag GROUP BY k`},
	{name: "count_if_bool_aggs", sql: `SELECT k, count_if(flag) AS cf, countif(i > 0) AS ci, bool_and(flag) AS ba, bool_or(i > 0) AS bo FROM t GROUP BY k`},
	{name: "filter_clauses", sql: `SELECT k, count(*) FILTER (WHERE flag) AS fc, sum(x) FILTER (WHERE i > 0) AS sp, avg(i) FILTER (WHERE x < 0) AS an, count(*) AS n FROM t GROUP BY k`},
	{name: "groups_only", sql: `SELECT k, k2 FROM t GROUP BY k, k2`},
	{name: "group_by_all_no_aggs", sql: `SELECT k, upper(s) AS us FROM t GROUP BY ALL`},
	{name: "lateral_alias", sql: `SELECT k, count(*) AS n, n * 2 AS n2, sum(i) AS si, si + n AS both FROM t GROUP BY k`},
	{name: "order_by_ignored", sql: `SELECT k, count(*) AS n FROM t GROUP BY k ORDER BY n DESC, k LIMIT ALL`},
	{name: "exprs_over_groups", sql: `SELECT k2 + 1 AS next, k2, upper(k) AS uk, count(*) AS n FROM t GROUP BY k2, k`},
	{name: "min_max_types", sql: `SELECT k2, min(ts) AS a, max(ts) AS b, min(d) AS c, max(s) AS e, min(flag) AS f, max(big) AS g FROM t GROUP BY k2`},
	{name: "global_having", sql: `SELECT count(*) AS n, sum(i) AS si FROM t HAVING count(*) > 1000000`},
	{name: "all_null_groups", sql: `SELECT k, sum(x) AS sx, count(x) AS cx, min(i) AS mi, avg(d) AS ad, bool_or(flag) AS bo FROM t WHERE k = 'z' OR k IS NULL GROUP BY k`},
	{name: "types_preserved", sql: `SELECT k, count(*) // 2 AS half, typeof(count(*)) AS tc, typeof(sum(i)) AS tsi, typeof(sum(d)) AS tsd, CAST(sum(big) AS VARCHAR) AS sb FROM t GROUP BY k`},
	{name: "time_parts", sql: `SELECT date_trunc('hour', ts) AS h, extract('dow' FROM ts) AS dow, count(*) AS n, min(x) AS mx FROM t GROUP BY ALL`},
	{name: "null_group_expression", sql: `SELECT nullif(k, 'a') AS k0, count(*) AS n, sum(big) AS sb FROM t GROUP BY 1`},
	{name: "sum_of_constants", sql: `SELECT k, sum(1) AS ones, count(1) AS c1, max(2) AS two, sum(0.5) AS halves FROM t GROUP BY k`},
	{name: "nested_aggs", sql: `SELECT k, coalesce(sum(x), 0) + coalesce(max(i), 0) AS z, sum(x) FILTER (WHERE flag) / nullif(count(*) FILTER (WHERE flag), 0) AS r, greatest(max(i), min(i) * -1) AS g FROM t GROUP BY k`},
	{name: "where_alias", sql: `SELECT abs(i) AS ai, count(*) AS n FROM t WHERE ai > 10 GROUP BY ai`},
	{name: "group_hidden_in_select", sql: `SELECT upper(k) AS uk, count(*) AS n FROM t GROUP BY k`},
	{name: "group_by_all_expr_and_agg", sql: `SELECT k || '-' || CAST(k2 AS VARCHAR) AS kk, k2 * 10 AS k10, count(*) AS n, sum(d) AS sd FROM t GROUP BY ALL`},
	{name: "uppercase_sql", sql: `SELECT K, COUNT(*) AS N, SUM(I) AS SI, AVG(X) FROM T GROUP BY K`},
	{name: "global_group_by_all", sql: `SELECT 'all' AS scope, count(*) AS n, sum(x) AS sx FROM t GROUP BY ALL`},
	{name: "macro_over_groups", sql: `SELECT k, nullif(count(*), 0) AS n, fdiv(sum(i), 2) AS h FROM t GROUP BY k`},
}

// incrTestBundle is one in-memory DuckDB on a single connection.
type incrTestBundle struct {
	conn *sql.Conn
	dir  string
}

func incrSetup(t testing.TB) *incrTestBundle {
	t.Helper()
	db, err := duckdb.Open("", map[string]string{"threads": "1"})
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return &incrTestBundle{conn: conn, dir: t.TempDir()}
}

// incrFloatDiff is the largest relative difference of a double between
// an incremental mart and its batch query, over the whole test run.
var incrFloatDiff struct {
	sync.Mutex
	max   float64
	where string
}

func TestIncrShapes(t *testing.T) {
	t.Parallel()
	t.Cleanup(func() {
		incrFloatDiff.Lock()
		defer incrFloatDiff.Unlock()
		t.Logf("largest relative difference of a double: %.3g (%s)", incrFloatDiff.max, incrFloatDiff.where)
	})
	for i, c := range incrShapes {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := incrSetup(t)
			dataset := c.dataset
			if dataset == "" {
				dataset = "t"
			}
			plan := b.check(t, dataset, incrSchema, c.sql, c.partitionBy, uint64(i)*7919+1)
			if c.aggs > 0 {
				require.Len(t, plan.Aggs, c.aggs)
			}
			require.Len(t, plan.PartitionGroup, len(c.partitionBy))
		})
	}
}

// TestIncrExamples checks every mart of the example pipelines: the
// incremental ones against their batch query, the others refused.
func TestIncrExamples(t *testing.T) {
	t.Parallel()
	refused := map[string]string{
		"feedback.customer_sentiment": "arg_max is not decomposable",
		"market.bars_1m":              "first with ORDER BY is not decomposable",
		"market.indicators":           "WITH (common table expression)",
	}
	planned := 0
	for _, ex := range []string{"shop", "iot", "feedback", "market"} {
		spec, err := pipeline.Load(filepath.Join("..", "..", "examples", ex, "pipeline.yaml"))
		require.NoError(t, err)
		for j, m := range spec.Marts {
			if m.Generated {
				continue
			}
			var schema []incrColumn
			for _, c := range spec.Dataset(m.Dataset).Schema {
				schema = append(schema, incrColumn{Name: c.Name, Type: c.Type})
			}
			name := ex + "." + m.Name
			want, refuse := refused[name]
			if !refuse {
				planned++
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := incrSetup(t)
				if refuse {
					plan, reason, err := incrPlanMart(t.Context(), b.conn, m.Dataset, schema, m.SQL, m.PartitionBy)
					require.NoError(t, err)
					require.Nil(t, plan)
					require.Equal(t, want, reason)
					return
				}
				plan := b.check(t, m.Dataset, schema, m.SQL, m.PartitionBy, uint64(j)*104729+7)
				require.Len(t, plan.PartitionGroup, len(m.PartitionBy))
			})
		}
	}
	require.Equal(t, 4, planned, "incremental example marts")
}

// check plans sql, then keeps the mart over random records in random
// batches as the aggregator would (a partial per batch, merged into the
// stored partials, sometimes through Parquet), and requires the final
// rows to equal the batch query over all records. Two seeds, so two
// different batchings.
func (b *incrTestBundle) check(t *testing.T, dataset string, schema []incrColumn, query string, partitionBy []string, seed uint64) *incrPlan {
	t.Helper()
	ctx := t.Context()
	plan, reason, err := incrPlanMart(ctx, b.conn, dataset, schema, query, partitionBy)
	require.NoError(t, err)
	require.Empty(t, reason)
	require.NotNil(t, plan)
	t.Logf("partial: %s\nmerge: %s\nfinal: %s", plan.PartialSQL, plan.MergeSQL("src"), plan.FinalSQL("src"))

	cols := make([]string, len(schema))
	defs := make([]string, len(schema))
	for i, c := range schema {
		cols[i] = duckdb.Ident(c.Name)
		defs[i] = duckdb.Ident(c.Name) + " " + c.Type
	}
	colList := strings.Join(cols, ", ")
	var partialDefs []string
	for _, c := range plan.Columns {
		partialDefs = append(partialDefs, duckdb.Ident(c.Name)+" "+c.Type)
	}
	// MergeSQL returns the partial table's shape.
	got, err := describe(ctx, b.conn, incrDatasetCTE(dataset, schema)+plan.MergeSQL("("+plan.PartialSQL+")"))
	require.NoError(t, err)
	require.Equal(t, plan.Columns, got)

	for round := range 2 {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		batches := 1 + rng.IntN(20)
		rows := 20 + rng.IntN(300)
		b.exec(t, "CREATE OR REPLACE TABLE _all ("+strings.Join(defs, ", ")+", _batch INTEGER)")
		vals := make([]string, rows)
		for r := range rows {
			vals[r] = "(" + strings.Join(incrRecord(rng, schema, r), ", ") + ", " + strconv.Itoa(rng.IntN(batches)) + ")"
		}
		b.exec(t, "INSERT INTO _all VALUES "+strings.Join(vals, ", "))

		// The stored partials: a table, or a Parquet file read back.
		b.exec(t, "CREATE OR REPLACE TABLE _merged ("+strings.Join(partialDefs, ", ")+")")
		state := "_merged"
		for batch := range batches {
			b.exec(t, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT %s FROM _all WHERE _batch = %d", duckdb.Ident(dataset), colList, batch))
			b.exec(t, "CREATE OR REPLACE TABLE _partial AS "+plan.PartialSQL)
			b.exec(t, "CREATE OR REPLACE TABLE _next AS "+plan.MergeSQL("(SELECT * FROM "+state+" UNION ALL SELECT * FROM _partial)"))
			if rng.IntN(3) == 0 {
				file := filepath.Join(b.dir, fmt.Sprintf("merged-%d-%d.parquet", round, batch))
				b.exec(t, "COPY _next TO "+duckdb.Literal(file)+" (FORMAT parquet)")
				state = "read_parquet(" + duckdb.Literal(file) + ")"
			} else {
				b.exec(t, "CREATE OR REPLACE TABLE _merged AS SELECT * FROM _next")
				state = "_merged"
			}
		}
		b.exec(t, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT %s FROM _all", duckdb.Ident(dataset), colList))
		want := b.rows(t, "SELECT * FROM ("+query+") ORDER BY ALL")
		have := b.rows(t, "SELECT * FROM ("+plan.FinalSQL(state)+") ORDER BY ALL")
		require.Equal(t, want.cols, have.cols, "columns")
		require.Len(t, have.vals, len(want.vals), "rows")
		for r := range want.vals {
			for c := range want.cols {
				incrRequireEqual(t, want.vals[r][c], have.vals[r][c], fmt.Sprintf("%s row %d column %s", t.Name(), r, want.cols[c].Name))
			}
		}
		// Empty batches only: a mart without GROUP BY still has its row.
		if len(plan.Groups) == 0 {
			b.exec(t, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT %s FROM _all WHERE false", duckdb.Ident(dataset), colList))
			want := b.rows(t, query)
			have := b.rows(t, plan.FinalSQL("(SELECT * FROM _merged WHERE false)"))
			require.Equal(t, want.vals, have.vals)
		}
	}
	return plan
}

func (b *incrTestBundle) exec(t *testing.T, q string) {
	t.Helper()
	_, err := b.conn.ExecContext(t.Context(), q)
	require.NoError(t, err, q)
}

type incrRows struct {
	cols []incrColumn
	vals [][]any
}

func (b *incrTestBundle) rows(t *testing.T, q string) incrRows {
	t.Helper()
	cols, err := describe(t.Context(), b.conn, q)
	require.NoError(t, err, q)
	rows, err := b.conn.QueryContext(t.Context(), q)
	require.NoError(t, err, q)
	defer rows.Close()
	out := incrRows{cols: cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		out.vals = append(out.vals, vals)
	}
	require.NoError(t, rows.Err())
	return out
}

// incrRequireEqual compares exactly, but doubles to a relative 1e-9 (a
// sum of doubles depends on the order of its terms).
func incrRequireEqual(t *testing.T, want, have any, where string) {
	t.Helper()
	wf, wok := incrFloat(want)
	hf, hok := incrFloat(have)
	if wok && hok {
		if wf == hf || (math.IsNaN(wf) && math.IsNaN(hf)) {
			return
		}
		diff := math.Abs(wf-hf) / math.Max(math.Abs(wf), math.Abs(hf))
		incrFloatDiff.Lock()
		if diff > incrFloatDiff.max {
			incrFloatDiff.max, incrFloatDiff.where = diff, fmt.Sprintf("%s: %v vs %v", where, wf, hf)
		}
		incrFloatDiff.Unlock()
		require.LessOrEqual(t, diff, 1e-9, "%s: want %v, have %v", where, wf, hf)
		return
	}
	require.Equal(t, fmt.Sprintf("%T %v", want, want), fmt.Sprintf("%T %v", have, have), where)
}

func incrFloat(v any) (float64, bool) {
	switch f := v.(type) {
	case float64:
		return f, true
	case float32:
		return float64(f), true
	}
	return 0, false
}

// incrRecord makes one random record as SQL literals: about one value in
// ten NULL, small domains for strings and keys (many rows per group).
func incrRecord(rng *rand.Rand, schema []incrColumn, n int) []string {
	words := []string{"a", "b", "c", "z", "positive", "negative", "neutral", "Ünï cødé", "it's"}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	vals := make([]string, len(schema))
	for i, c := range schema {
		null := rng.IntN(10) == 0
		switch {
		case c.Name == "id":
			vals[i] = strconv.Itoa(n)
			continue
		case null:
			vals[i] = "NULL"
			continue
		}
		switch {
		case c.Name == "k":
			vals[i] = duckdb.Literal(words[rng.IntN(4)])
		case c.Name == "k2":
			vals[i] = strconv.Itoa(rng.IntN(4))
		case c.Name == "big":
			vals[i] = strconv.FormatInt(rng.Int64N(1<<62)-(1<<61)+rng.Int64N(1<<61), 10)
		case c.Type == "BIGINT" || c.Type == "INTEGER":
			vals[i] = strconv.Itoa(rng.IntN(101) - 50)
		case strings.HasPrefix(c.Type, "DECIMAL"):
			vals[i] = strconv.FormatFloat(float64(rng.Int64N(2_000_000_000)-1_000_000_000)/10_000, 'f', 4, 64)
		case c.Type == "DOUBLE":
			vals[i] = strconv.FormatFloat((rng.Float64()-0.4)*1000, 'g', -1, 64)
		case c.Type == "BOOLEAN":
			vals[i] = strconv.FormatBool(rng.IntN(2) == 0)
		case c.Type == "TIMESTAMPTZ":
			ts := base.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
			vals[i] = duckdb.Literal(ts.Format("2006-01-02 15:04:05.999999Z07:00"))
		default:
			vals[i] = duckdb.Literal(words[rng.IntN(len(words))])
		}
	}
	for i, c := range schema {
		if c.Name == "k" && vals[i] == "'z'" {
			for j, m := range schema {
				if m.Name != "id" && (m.Type != "VARCHAR" && m.Type != "TIMESTAMPTZ") {
					vals[j] = "NULL"
				}
			}
		}
	}
	return vals
}

// TestIncrRefusals: valid marts that are not decomposable get a reason.
func TestIncrRefusals(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql, reason string
		partitionBy []string
	}{
		{sql: `SELECT k, median(x) FROM t GROUP BY k`, reason: "median is not decomposable"},
		{sql: `SELECT k, quantile_cont(x, 0.9) FROM t GROUP BY k`, reason: "quantile_cont is not decomposable"},
		{sql: `SELECT k, string_agg(s, ',') FROM t GROUP BY k`, reason: "string_agg is not decomposable"},
		{sql: `SELECT k, list(s) FROM t GROUP BY k`, reason: "list is not decomposable"},
		{sql: `SELECT k, count(DISTINCT s) FROM t GROUP BY k`, reason: "count(DISTINCT ...) is not decomposable"},
		{sql: `SELECT k, stddev(x) FROM t GROUP BY k`, reason: "stddev is not decomposable"},
		{sql: `SELECT k, any_value(s) FROM t GROUP BY k`, reason: "any_value is not decomposable"},
		{sql: `SELECT k, first(s) FROM t GROUP BY k`, reason: "first is not decomposable"},
		{sql: `SELECT k, last(s ORDER BY ts) FROM t GROUP BY k`, reason: "last with ORDER BY is not decomposable"},
		{sql: `SELECT k, sum(x ORDER BY ts) FROM t GROUP BY k`, reason: "sum with ORDER BY is not decomposable"},
		{sql: `SELECT k, arg_max(s, ts) FROM t GROUP BY k`, reason: "arg_max is not decomposable"},
		{sql: `SELECT k, max(x, 3) FROM t GROUP BY k`, reason: "max with 2 arguments is not decomposable"},
		{sql: `SELECT k, weighted_avg(x, i) FROM t GROUP BY k`, reason: "weighted_avg is not decomposable"},
		{sql: `SELECT k, geomean(x) FROM t GROUP BY k`, reason: "geomean is not decomposable"},
		{sql: `SELECT k, avg(ts) FROM t GROUP BY k`, reason: "avg over TIMESTAMP WITH TIME ZONE is not decomposable"},
		{sql: `SELECT k, lag(x) OVER (ORDER BY ts) FROM t`, reason: "window function lag"},
		{sql: `SELECT k, sum(count(*)) OVER () FROM t GROUP BY k`, reason: "window function sum"},
		{sql: `SELECT k, count(*) FROM t WHERE i > (SELECT avg(i) FROM t) GROUP BY k`, reason: "subquery in WHERE"},
		{sql: `SELECT k, (SELECT 1) AS one, count(*) FROM t GROUP BY k`, reason: "subquery in SELECT"},
		{sql: `SELECT k, count(*) FROM t GROUP BY k HAVING k IN (SELECT 'a')`, reason: "subquery in HAVING"},
		{sql: `WITH u AS (SELECT * FROM t) SELECT k, count(*) FROM u GROUP BY k`, reason: "WITH (common table expression)"},
		{sql: `SELECT t.k, count(*) FROM t JOIN t AS u ON t.id = u.id GROUP BY t.k`, reason: "join"},
		{sql: `SELECT k, count(*) FROM t, t AS u GROUP BY ALL`, reason: "join"},
		{sql: `SELECT k, count(*) FROM (SELECT * FROM t) GROUP BY k`, reason: "subquery in FROM"},
		{sql: `SELECT count(*) FROM read_parquet('x.parquet')`, reason: "table function in FROM"},
		{sql: `SELECT k, count(*) FROM other GROUP BY k`, reason: "FROM reads other, not the dataset t"},
		{sql: `SELECT k, count(*) FROM lake.t GROUP BY k`, reason: "FROM names schema lake"},
		{sql: `SELECT k FROM t UNION SELECT s FROM t`, reason: "set operation UNION"},
		{sql: `SELECT DISTINCT k FROM t`, reason: "SELECT DISTINCT"},
		{sql: `SELECT DISTINCT ON (k) k, count(*) FROM t GROUP BY k`, reason: "DISTINCT ON"},
		{sql: `SELECT k, count(*) FROM t GROUP BY k LIMIT 10`, reason: "LIMIT or OFFSET"},
		{sql: `SELECT k, count(*) AS n FROM t GROUP BY k QUALIFY n > 1`, reason: "QUALIFY"},
		{sql: `SELECT k, count(*) FROM t TABLESAMPLE 10% GROUP BY k`, reason: "SAMPLE"},
		{sql: `SELECT k, count(*) FROM t GROUP BY k USING SAMPLE 10%`, reason: "SAMPLE"},
		{sql: `SELECT k, k2, count(*) FROM t GROUP BY GROUPING SETS ((k), (k2))`, reason: "GROUPING SETS, ROLLUP or CUBE"},
		{sql: `SELECT k, count(*) FROM t GROUP BY ROLLUP (k)`, reason: "GROUPING SETS, ROLLUP or CUBE"},
		{sql: `SELECT k, k2, count(*) FROM t GROUP BY CUBE (k, k2)`, reason: "GROUPING SETS, ROLLUP or CUBE"},
		{sql: `SELECT k, x FROM t WHERE i > 0`, reason: "not an aggregation (no GROUP BY and no aggregate)"},
		{sql: `SELECT * FROM t`, reason: "* or COLUMNS(...) in SELECT"},
		{sql: `SELECT k COLLATE nocase AS kk, count(*) FROM t GROUP BY 1`, reason: "COLLATE in a group expression"},
		{sql: `SELECT k, min(s COLLATE nocase) FROM t GROUP BY k`, reason: "COLLATE inside min"},
		{sql: `SELECT k, count(*) AS n FROM t GROUP BY k`, partitionBy: []string{"n"}, reason: "partition column n is not a group expression"},
		{sql: `SELECT k, upper(k) AS uk, count(*) AS n FROM t GROUP BY k`, partitionBy: []string{"uk"}, reason: "partition column uk is not a group expression"},
	} {
		t.Run(c.sql, func(t *testing.T) {
			t.Parallel()
			b := incrSetup(t)
			plan, reason, err := incrPlanMart(t.Context(), b.conn, "t", incrSchema, c.sql, c.partitionBy)
			require.NoError(t, err)
			require.Nil(t, plan)
			require.Equal(t, c.reason, reason)
		})
	}
}

// TestIncrErrors: SQL that does not parse or bind is an error, not a reason.
func TestIncrErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql         string
		partitionBy []string
	}{
		{sql: `SELEC k FROM t`},
		{sql: `SELECT k, count(*) FROM t GROUP BY k; SELECT 1`},
		{sql: `SELECT nope, count(*) FROM t GROUP BY nope`},
		{sql: `SELECT k, count(*) FROM t GROUP BY 3`},
		{sql: `SELECT k, i, count(*) FROM t GROUP BY k`},
		{sql: `SELECT k, no_such_function(i) FROM t GROUP BY k`},
		{sql: `SELECT k, count(*) AS n FROM t GROUP BY k`, partitionBy: []string{"day"}},
	} {
		t.Run(c.sql, func(t *testing.T) {
			t.Parallel()
			b := incrSetup(t)
			plan, reason, err := incrPlanMart(t.Context(), b.conn, "t", incrSchema, c.sql, c.partitionBy)
			require.Error(t, err)
			require.Nil(t, plan)
			require.Empty(t, reason)
		})
	}
}

// TestIncrPlanShape pins the plan of the shop's daily_sales mart.
func TestIncrPlanShape(t *testing.T) {
	t.Parallel()
	b := incrSetup(t)
	schema := []incrColumn{{Name: "country", Type: "VARCHAR"}, {Name: "amount_usd", Type: "DOUBLE"}, {Name: "ts", Type: "TIMESTAMPTZ"}, {Name: "qty", Type: "INTEGER"}}
	plan, reason, err := incrPlanMart(t.Context(), b.conn, "orders", schema, `
		SELECT CAST(timezone('UTC', ts) AS DATE) AS day, country,
		       count(*) AS orders, sum(qty) AS items, sum(amount_usd) / count(*) AS aov_usd
		FROM orders GROUP BY ALL`, []string{"day"})
	require.NoError(t, err)
	require.Empty(t, reason)
	require.Equal(t, map[string]string{"day": "_jf_g0"}, plan.PartitionGroup)
	require.Equal(t, []incrColumn{
		{Name: "_jf_g0", Type: "DATE"},
		{Name: "_jf_g1", Type: "VARCHAR"},
		{Name: "_jf_a0", Type: "BIGINT"},
		{Name: "_jf_a1", Type: "DECIMAL(38,0)"},
		{Name: "_jf_a2", Type: "DOUBLE"},
	}, plan.Columns)
	require.Equal(t, []incrColumn{
		{Name: "day", Type: "DATE"},
		{Name: "country", Type: "VARCHAR"},
		{Name: "orders", Type: "BIGINT"},
		{Name: "items", Type: "HUGEINT"},
		{Name: "aov_usd", Type: "DOUBLE"},
	}, plan.Outputs)
	require.Equal(t, `SELECT CAST(timezone('UTC', ts) AS DATE) AS "_jf_g0", country AS "_jf_g1", count_star() AS "_jf_a0", CAST(sum(qty) AS DECIMAL(38,0)) AS "_jf_a1", sum(amount_usd) AS "_jf_a2" FROM "orders" GROUP BY 1, 2`, plan.PartialSQL)
	require.Equal(t, `SELECT "_jf_g0", "_jf_g1", CAST(coalesce(sum("_jf_a0"), 0) AS BIGINT) AS "_jf_a0", CAST(sum("_jf_a1") AS DECIMAL(38,0)) AS "_jf_a1", CAST(sum("_jf_a2") AS DOUBLE) AS "_jf_a2" FROM (SELECT * FROM partials) GROUP BY ALL`, plan.MergeSQL("SELECT * FROM partials"))
	require.Equal(t, []string{"sum", "sum", "sum"}, []string{plan.Aggs[0].Merge, plan.Aggs[1].Merge, plan.Aggs[2].Merge})
}

func TestIncrFromItem(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]string{
		"partials":                    "partials",
		`"my partials"`:               `"my partials"`,
		"read_parquet('p/*.parquet')": "read_parquet('p/*.parquet')",
		"(SELECT * FROM a)":           "(SELECT * FROM a)",
		"SELECT * FROM a UNION ALL SELECT * FROM b": "(SELECT * FROM a UNION ALL SELECT * FROM b)",
		" from a":                     "(from a)",
		"selection":                   "selection",
		"WITH x AS (SELECT 1) FROM x": "(WITH x AS (SELECT 1) FROM x)",
	} {
		require.Equal(t, want, incrFromItem(src), src)
	}
}

// BenchmarkIncrPlanMart measures planning one mart (done once per mart
// when the aggregator starts).
func BenchmarkIncrPlanMart(b *testing.B) {
	bundle := incrSetup(b)
	schema := []incrColumn{{Name: "order_id", Type: "VARCHAR"}, {Name: "country", Type: "VARCHAR"}, {Name: "amount_usd", Type: "DOUBLE"}, {Name: "ts", Type: "TIMESTAMPTZ"}}
	query := `SELECT CAST(timezone('UTC', ts) AS DATE) AS day, country, count(*) AS orders,
	                 sum(amount_usd) AS revenue_usd, sum(amount_usd) / count(*) AS aov_usd
	          FROM orders GROUP BY ALL`
	for b.Loop() {
		plan, reason, err := incrPlanMart(b.Context(), bundle.conn, "orders", schema, query, []string{"day"})
		if err != nil || reason != "" || plan == nil {
			b.Fatal(err, reason)
		}
	}
}
