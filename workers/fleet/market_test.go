package fleet_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // the batch computation and the Parquet reader
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples/marketgen"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// batchTicksSQL normalises the raw feeds on its own, from the published
// bytes (file raw): it knows the two shapes and the rules a tick must
// pass, and none of the pipeline's sources, rules or transforms, so a
// bug there shows as a difference.
const batchTicksSQL = `
CREATE TABLE ticks AS
WITH lines AS (
  SELECT unnest(string_split(content, chr(10))) AS line FROM read_text('%s')
), objs AS (
  SELECT CAST(line AS JSON) AS j FROM lines WHERE json_valid(line) AND json_type(CAST(line AS JSON)) = 'OBJECT'
), shaped AS (
  SELECT CASE WHEN coalesce(json_type(j->'sym'), 'NULL') <> 'NULL' THEN 'A'
              WHEN coalesce(json_type(j->'instrument'), 'NULL') <> 'NULL' THEN 'B' END AS feed, j
  FROM objs
), fields AS (
  SELECT feed,
         CASE feed WHEN 'A' THEN j->'id'   ELSE j->'trade'->'id' END AS id_j,
         CASE feed WHEN 'A' THEN j->'sym'  ELSE j->'instrument'->'ticker' END AS sym_j,
         CASE feed WHEN 'A' THEN j->'px'   ELSE j->'trade'->'price' END AS px_j,
         CASE feed WHEN 'A' THEN j->'size' ELSE j->'trade'->'qty' END AS size_j,
         CASE feed WHEN 'A' THEN j->'ts'   ELSE j->'time' END AS ts_j
  FROM shaped WHERE feed IS NOT NULL
), typed AS (
  SELECT feed,
         CASE WHEN json_type(id_j) = 'VARCHAR' THEN id_j->>'$' END AS trade_id,
         CASE WHEN json_type(sym_j) = 'VARCHAR' THEN upper(trim(sym_j->>'$')) END AS symbol,
         CASE WHEN json_type(px_j) = 'VARCHAR' AND regexp_full_match(px_j->>'$', '[0-9]+(\.[0-9]+)?') THEN CAST(px_j->>'$' AS DECIMAL(18,4))
              WHEN json_type(px_j) IN ('DOUBLE', 'UBIGINT', 'BIGINT') THEN CAST(px_j->>'$' AS DECIMAL(18,4)) END AS price,
         CASE WHEN json_type(size_j) IN ('UBIGINT', 'BIGINT') THEN CAST(size_j->>'$' AS BIGINT) END AS size,
         CASE WHEN feed = 'A' AND json_type(ts_j) IN ('UBIGINT', 'BIGINT') THEN CAST(epoch_ms(CAST(ts_j->>'$' AS BIGINT)) AS TIMESTAMPTZ)
              WHEN feed = 'B' AND json_type(ts_j) = 'VARCHAR' THEN TRY_CAST(ts_j->>'$' AS TIMESTAMPTZ) END AS ts
  FROM fields
)
SELECT * FROM typed
WHERE length(trade_id) > 0 AND regexp_full_match(symbol, '[A-Z]{1,6}') AND price > 0 AND size >= 1 AND ts IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY trade_id ORDER BY ts) = 1`

// batchMartsSQL computes the marts from the batch ticks another way than
// the pipeline does: bars with arg_min/arg_max, indicators by joining
// each bar to the bars of its window instead of window frames.
const batchMartsSQL = `
CREATE TABLE want_bars AS
SELECT symbol, date_trunc('minute', ts AT TIME ZONE 'UTC') AS minute,
       arg_min(price, ts) AS open, max(price) AS high, min(price) AS low, arg_max(price, ts) AS close,
       sum(size) AS volume, count(*) AS trades
FROM ticks GROUP BY 1, 2;

CREATE TABLE want_indicators AS
WITH numbered AS (
  SELECT symbol, minute, CAST(minute AS DATE) AS day, CAST(close AS DOUBLE) AS close,
         row_number() OVER (PARTITION BY symbol, CAST(minute AS DATE) ORDER BY minute) AS n
  FROM want_bars
), steps AS (
  SELECT c.*, c.close - p.close AS change, ln(c.close / p.close) AS lr
  FROM numbered c LEFT JOIN numbered p ON p.symbol = c.symbol AND p.day = c.day AND p.n = c.n - 1
), sums AS (
  SELECT c.symbol, c.minute, c.close, c.n,
         avg(w.close) FILTER (WHERE w.n > c.n - 5) AS sma_5,
         avg(w.close) AS sma_20,
         stddev_samp(w.lr) AS volatility_20,
         sum(greatest(w.change, 0)) FILTER (WHERE w.n > c.n - 14) AS gains,
         sum(greatest(-w.change, 0)) FILTER (WHERE w.n > c.n - 14) AS losses
  FROM steps c JOIN steps w ON w.symbol = c.symbol AND w.day = c.day AND w.n BETWEEN c.n - 19 AND c.n
  GROUP BY ALL
)
SELECT symbol, minute, close,
       CASE WHEN n >= 5 THEN sma_5 END AS sma_5,
       CASE WHEN n >= 20 THEN sma_20 END AS sma_20,
       CASE WHEN n >= 21 THEN volatility_20 END AS volatility_20,
       CASE WHEN n >= 15 THEN CASE WHEN losses = 0 THEN 100 ELSE 100 - 100 / (1 + gains / losses) END END AS rsi_14
FROM sums`

// diffSQL lists the rows of the marts that differ from the batch (or
// exist on one side only), with their day; doubles may differ in the last
// bits (window frames and grouped sums add in another order).
const diffSQL = `
WITH got_bars AS (SELECT * FROM read_parquet('%[1]s/marts/bars_1m/*/*.parquet', hive_partitioning = true)),
got_ind AS (SELECT * FROM read_parquet('%[1]s/marts/indicators/*/*.parquet', hive_partitioning = true))
SELECT 'bars', CAST(CAST(coalesce(g.minute, w.minute) AS DATE) AS VARCHAR), concat_ws(' ', coalesce(g.symbol, w.symbol), coalesce(g.minute, w.minute))
FROM got_bars g FULL OUTER JOIN want_bars w ON g.symbol = w.symbol AND g.minute = w.minute
WHERE g.minute IS NULL OR w.minute IS NULL OR g.day <> CAST(g.minute AS DATE)
   OR (g.open, g.high, g.low, g.close, g.volume, g.trades) IS DISTINCT FROM (w.open, w.high, w.low, w.close, w.volume, w.trades)
UNION ALL
SELECT 'indicators', CAST(CAST(coalesce(g.minute, w.minute) AS DATE) AS VARCHAR), concat_ws(' ', coalesce(g.symbol, w.symbol), coalesce(g.minute, w.minute))
FROM got_ind g FULL OUTER JOIN want_indicators w ON g.symbol = w.symbol AND g.minute = w.minute
WHERE g.minute IS NULL OR w.minute IS NULL OR g.day <> CAST(g.minute AS DATE)
   OR NOT (near(g.close, w.close) AND near(g.sma_5, w.sma_5) AND near(g.sma_20, w.sma_20)
           AND near(g.volatility_20, w.volatility_20) AND near(g.rsi_14, w.rsi_14))
ORDER BY 1, 2, 3`

// marketRounds splits generated ticks of both feeds (with invalid records
// and replays), about 70 minutes across midnight, into three rounds: most
// records first; then the held-back late ticks of the second day (with
// held-back replays and invalid records); then those of the first day.
func marketRounds(t *testing.T) (rounds [3][]marketgen.Record, days [2]string) {
	t.Helper()
	gen := marketgen.New(marketgen.Config{
		Seed: 7, Start: time.Date(2026, 11, 21, 23, 35, 0, 0, time.UTC), Step: 3 * time.Second,
		InvalidShare: 0.04, ReplayShare: 0.05,
	})
	days = [2]string{"2026-11-21", "2026-11-22"}
	r := rand.New(rand.NewPCG(7, 8))
	for range 1400 {
		rec := gen.Next()
		switch {
		case r.IntN(8) != 0:
			rounds[0] = append(rounds[0], rec)
		case rec.Valid && !rec.Replay && tickDay(t, rec) == days[0]:
			rounds[2] = append(rounds[2], rec)
		default:
			rounds[1] = append(rounds[1], rec)
		}
	}
	require.NotEmpty(t, rounds[2])
	return rounds, days
}

// marketBundle is the market fleet of one test and the batch computation
// it is compared with.
type marketBundle struct {
	t       *testing.T
	js      jetstream.JetStream
	db      *sql.DB
	dataDir string
	// crossDays makes the batch indicator windows run across midnight.
	crossDays bool
	raw       bytes.Buffer
	lastDiff  string
}

func setupMarket(t *testing.T, spec *pipeline.Spec) *marketBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	for _, m := range spec.Marts {
		m.FlushRecords, m.FlushInterval = 500, 200*time.Millisecond // many flushes
	}
	b := &marketBundle{t: t, js: js, dataDir: t.TempDir()}
	runFleet(t, nc, spec, b.dataDir)
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	db.SetMaxOpenConns(1) // one in-memory database
	t.Cleanup(func() { _ = db.Close() })
	b.db = db
	return b
}

func (b *marketBundle) publish(recs []marketgen.Record) {
	b.t.Helper()
	for _, rec := range recs {
		m := nats.NewMsg(subjects.Ingest(marketgen.Dataset))
		m.Data = rec.Data
		m.Header.Set(subjects.HeaderMsgID, rec.MsgID)
		ack, err := b.js.PublishMsg(b.t.Context(), m)
		require.NoError(b.t, err)
		require.False(b.t, ack.Duplicate, "message ids are unique")
		b.raw.Write(rec.Data)
		b.raw.WriteByte('\n')
	}
	b.batch()
}

// batch recomputes the expected marts over everything published so far.
func (b *marketBundle) batch() {
	b.t.Helper()
	file := filepath.Join(b.t.TempDir(), "raw.ndjson")
	require.NoError(b.t, os.WriteFile(file, b.raw.Bytes(), 0o600))
	marts := batchMartsSQL
	if b.crossDays {
		marts = strings.NewReplacer("PARTITION BY symbol, CAST(minute AS DATE)", "PARTITION BY symbol", "AND p.day = c.day", "", "AND w.day = c.day", "").Replace(marts)
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS ticks", "DROP TABLE IF EXISTS want_bars", "DROP TABLE IF EXISTS want_indicators",
		fmt.Sprintf(batchTicksSQL, file), marts, macroNear,
	} {
		_, err := b.db.ExecContext(b.t.Context(), q)
		require.NoError(b.t, err, q)
	}
}

// diff compares the marts on disk with the batch, per day; it fails (as
// not ready) while a mart has no Parquet file yet.
func (b *marketBundle) diff() (bars, ind map[string]int, err error) {
	rows, err := b.db.QueryContext(b.t.Context(), fmt.Sprintf(diffSQL, b.dataDir))
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	bars, ind = map[string]int{}, map[string]int{}
	var sample []string
	for rows.Next() {
		var mart, day, row string
		if err := rows.Scan(&mart, &day, &row); err != nil {
			return nil, nil, err
		}
		if mart == "bars" {
			bars[day]++
		} else {
			ind[day]++
		}
		if len(sample) < 5 {
			sample = append(sample, mart+" "+row)
		}
	}
	b.lastDiff = fmt.Sprintf("bar rows differing per day %v, indicator rows %v: %s", bars, ind, strings.Join(sample, ", "))
	return bars, ind, rows.Err()
}

// match returns nil when the marts equal the batch computation, else how
// they differ, named what: a condition for embeddedtest.CheckFor.
func (b *marketBundle) match(what string) error {
	bars, ind, err := b.diff()
	if err != nil {
		b.lastDiff = err.Error()
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(bars) > 0 || len(ind) > 0 {
		return fmt.Errorf("%s: %s", what, b.lastDiff)
	}
	return nil
}

// indicatorRows renders one day's indicator partition, to see it change.
func (b *marketBundle) indicatorRows(day string) string {
	b.t.Helper()
	var s string
	require.NoError(b.t, b.db.QueryRowContext(b.t.Context(), fmt.Sprintf(`SELECT string_agg(concat(symbol, minute, sma_20, rsi_14), ',' ORDER BY symbol, minute)
		FROM read_parquet('%s/marts/indicators/*/*.parquet', hive_partitioning = true) WHERE CAST(day AS VARCHAR) = ?`, b.dataDir), day).Scan(&s))
	return s
}

// TestMarketMartsMatchBatch runs generated ticks through the real fleet
// of the market example in three rounds, the later ones late ticks of
// days flushed before. After each round the marts must equal a batch
// DuckDB computation over everything published: the aggregator's
// recompute of only the touched day partitions equals a full recompute,
// because the indicator windows never cross a day.
func TestMarketMartsMatchBatch(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Load("../../examples/market/pipeline.yaml")
	require.NoError(t, err)
	b := setupMarket(t, spec)
	rounds, days := marketRounds(t)

	b.publish(rounds[0])
	// Each check is a DuckDB batch query: no need to spin.
	embeddedtest.CheckFor(t, 5*time.Minute, 100*time.Millisecond, func() error { return b.match("marts of round 1") })
	for i, round := range rounds[1:] {
		before := b.indicatorRows(days[1-i])
		b.publish(round)
		embeddedtest.CheckFor(t, 5*time.Minute, 100*time.Millisecond, func() error { return b.match(fmt.Sprintf("marts of round %d", i+2)) })
		require.NotEqual(t, before, b.indicatorRows(days[1-i]), "round %d changed the indicators of %s", i+2, days[1-i])
	}

	var ticks, dayCount, full int
	ctx := t.Context()
	require.NoError(t, b.db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT CAST(ts AT TIME ZONE 'UTC' AS DATE)) FROM ticks`).Scan(&ticks, &dayCount))
	require.NoError(t, b.db.QueryRowContext(ctx, `SELECT count(*) FROM want_indicators WHERE volatility_20 IS NOT NULL AND rsi_14 IS NOT NULL AND sma_20 IS NOT NULL`).Scan(&full))
	require.Equal(t, 2, dayCount)
	require.Greater(t, full, 50, "indicators fill in")

	// Every published record is accounted for: clean or dead-lettered.
	all := slices.Concat(rounds[:]...)
	embeddedtest.WaitFor(t, time.Minute, "clean + dead letters = published", func() bool {
		return embeddedtest.StreamMsgs(t, b.js, subjects.StreamClean)+embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == uint64(len(all))
	})
	valid := 0
	for _, rec := range all {
		if rec.Valid {
			valid++
		}
	}
	require.Equal(t, uint64(valid), embeddedtest.StreamMsgs(t, b.js, subjects.StreamClean), "the generator's valid records, replays included, are clean")
	require.Less(t, ticks, valid, "replays count once in the marts")
}

// TestMarketCrossDayWindowsGoStale shows the trap the example's
// partitioning avoids: with indicator windows running across midnight, a
// late tick of day 1 changes day 2's first indicators, but the mart
// builder, like the unpartitioned aggregator, recomputes only the mart
// partitions new records fall in (docs/scale-out.md), so day 2 stays
// stale and differs from the batch. Day 1 and the bars are always right.
func TestMarketCrossDayWindowsGoStale(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Load("../../examples/market/pipeline.yaml")
	require.NoError(t, err)
	m := spec.Mart("indicators")
	crossing := strings.NewReplacer("PARTITION BY symbol, CAST(minute AS DATE)", "PARTITION BY symbol", "PARTITION BY symbol, day", "PARTITION BY symbol").Replace(m.SQL)
	require.NotEqual(t, m.SQL, crossing)
	m.SQL = crossing
	b := setupMarket(t, spec)
	b.crossDays = true
	rounds, days := marketRounds(t)

	// Partitions write day 1's and day 2's ticks to the lake in any order,
	// so day 2 may be stale after any round; day 1 never is.
	for i, round := range rounds {
		b.publish(round) // the last: late ticks of day 1 only
		embeddedtest.CheckFor(t, 5*time.Minute, 100*time.Millisecond, func() error {
			bars, ind, err := b.diff()
			if err != nil || len(bars) > 0 || ind[days[0]] > 0 {
				return fmt.Errorf("bars and day 1 of round %d: %v %s", i+1, err, b.lastDiff)
			}
			return nil
		})
	}
	_, ind, err := b.diff()
	require.NoError(t, err)
	require.Positive(t, ind[days[1]], "day 2's indicators are stale: %s", b.lastDiff)
}

// macroNear: equal within a relative 1e-9, or both NULL.
const macroNear = `CREATE OR REPLACE MACRO near(a, b) AS (a IS NULL AND b IS NULL) OR abs(a - b) <= 1e-9 * greatest(1, abs(b))`

func tickDay(t *testing.T, rec marketgen.Record) string {
	t.Helper()
	rp, err := pipeline.DecodeRecord(rec.Data)
	require.NoError(t, err)
	if rec.Feed == marketgen.FeedA {
		ms, ok := pipeline.AsFloat(rp["ts"])
		require.True(t, ok)
		return time.UnixMilli(int64(ms)).UTC().Format(time.DateOnly)
	}
	ts, err := time.Parse(time.RFC3339, rp["time"].(string))
	require.NoError(t, err)
	return ts.UTC().Format(time.DateOnly)
}

// runFleet runs every member of spec's fleet until the test ends.
func runFleet(t *testing.T, nc *nats.Conn, spec *pipeline.Spec, dataDir string) {
	t.Helper()
	fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel), Spec: spec, DataDir: dataDir})
	require.NoError(t, err)
	require.NoError(t, fl.Prepare(t.Context()))
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, len(fl.Members))
	for i, m := range fl.Members {
		wg.Go(func() { errs[i] = m.Run(runCtx) })
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		closeCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
		defer done()
		require.NoError(t, fl.Close(closeCtx))
		for i, err := range errs {
			require.NoError(t, err, fl.Members[i].Name)
		}
	})
}
