package aggregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

var errCrash = errors.New("test: crashed here")

type testBundle struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	dataDir string
	log     zerolog.Logger
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	return &testBundle{nc: nc, js: js, dataDir: t.TempDir(), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)}
}

func (b *testBundle) config() Config {
	return Config{
		DataDir: b.dataDir, Dataset: shopDataset(), Marts: shopMarts(),
		MemoryLimit: "256MB", Threads: 1, FlushRecords: 300, FlushInterval: 40 * time.Millisecond, Logger: b.log,
	}
}

// running is an aggregator with its worker.
type running struct {
	agg *Aggregator
	w   *workers.Worker
}

func (b *testBundle) start(t *testing.T, cfg Config, h hooks) *running {
	t.Helper()
	agg, err := New(cfg)
	require.NoError(t, err)
	agg.hooks = h
	require.NoError(t, agg.Start(t.Context()))
	w, err := workers.New(agg.WorkerConfig(workers.Config{
		Conn: b.nc, Logger: b.log, FetchBatch: 64, RetryBackoffMin: 20 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond,
	}))
	require.NoError(t, err)
	require.NoError(t, w.Start(t.Context()))
	r := &running{agg: agg, w: w}
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.w.Stop(ctx))
	require.NoError(t, r.agg.Stop(ctx))
}

// kill stops the worker with nothing more acked and the aggregator with
// nothing more written: what a SIGKILL leaves.
func (r *running) kill(t *testing.T) {
	r.agg.crash()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.w.Stop(ctx))
}

// publish sends the stream: the first half one record per message, the
// rest in bulk messages of up to 25 records. Each message has its own id,
// so re-sent records are duplicates only the aggregator can catch.
func (b *testBundle) publish(t *testing.T, stream [][]byte) uint64 {
	t.Helper()
	var last uint64
	// One key token for all: the stream files them in one partition, which
	// the test's whole-dataset consumer reads like any other.
	subject := subjects.CleanKey("orders", subjects.KeyToken("orders"))
	half := len(stream) / 2
	for i := 0; i < len(stream); {
		msg := nats.NewMsg(subject)
		msg.Header.Set(subjects.HeaderMsgID, "m-"+strconv.Itoa(i))
		if i < half {
			msg.Data = stream[i]
			i++
		} else {
			end := min(i+25, len(stream))
			msg.Data = workers.JoinBulk(stream[i:end])
			msg.Header.Set(subjects.HeaderRecords, strconv.Itoa(end-i))
			i = end
		}
		ack, err := b.js.PublishMsg(t.Context(), msg)
		require.NoError(t, err)
		last = ack.Sequence
	}
	return last
}

// waitFlushed waits until the state holds everything up to seq and every
// mart and the lake have folded it in.
func waitFlushed(t *testing.T, agg *Aggregator, dataDir string, seq uint64) {
	t.Helper()
	require.Eventually(t, func() bool {
		s := agg.Stats()
		if s.CommittedSeq < seq || s.FlushedSeq < seq {
			return false
		}
		pending, err := marts.Pending(dataDir)
		return err == nil && len(pending) == 0
	}, 30*time.Second, 10*time.Millisecond)
}

func TestAggregateEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	distinct, stream := genOrders(1, 2000)
	r := b.start(t, b.config(), hooks{})
	last := b.publish(t, stream)
	waitFlushed(t, r.agg, b.dataDir, last)

	s := r.agg.Stats()
	require.Equal(t, int64(len(distinct)), s.Records)
	require.Equal(t, int64(len(stream)-len(distinct)), s.Duplicates)
	requireMartsEqualBatch(t, b.dataDir, distinct)
	requireLakeEqual(t, b.dataDir, distinct)
	requireReadableByArrow(t, b.dataDir, distinct)

	// A restart changes nothing, and the same records again add nothing.
	r.stop(t)
	r = b.start(t, b.config(), hooks{})
	last = b.publish(t, stream[:500])
	waitFlushed(t, r.agg, b.dataDir, last)
	require.Equal(t, int64(len(distinct)), r.agg.Stats().Records)
	requireMartsEqualBatch(t, b.dataDir, distinct)
	requireLakeEqual(t, b.dataDir, distinct)
}

func TestAggregateRejectsBadRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.start(t, b.config(), hooks{})
	good := `{"order_id":"g-1","customer_id":"c-1","amount":1,"currency":"USD","amount_usd":1,"country":"US","ts":"2026-10-01T01:00:00Z"}`
	stream := [][]byte{
		[]byte(good),
		[]byte(`not json`),
		[]byte(`{"customer_id":"c-1","amount_usd":1,"ts":"2026-10-01T01:00:00Z"}`),
		[]byte(`{"order_id":"g-2","amount_usd":"lots","ts":"2026-10-01T01:00:00Z"}`),
		[]byte(`{"order_id":"g-3","amount_usd":2,"ts":"yesterday"}`),
	}
	last := b.publish(t, stream)
	waitFlushed(t, r.agg, b.dataDir, last)
	require.Equal(t, int64(1), r.agg.Stats().Records)

	dlq, err := b.js.Stream(t.Context(), subjects.StreamFor(subjects.KindDLQ))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := dlq.Info(t.Context())
		return err == nil && info.State.Msgs == 4
	}, 10*time.Second, 10*time.Millisecond)
	var o order
	require.NoError(t, jsonUnmarshal([]byte(good), &o))
	requireMartsEqualBatch(t, b.dataDir, []order{o})
}

// TestAggregateCrash kills the aggregator at the points that matter and
// checks that after a restart the marts still equal the batch result.
func TestAggregateCrash(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		hook func(crashed func() bool, crash func()) hooks
	}{
		{"between commit and ack", func(crashed func() bool, crash func()) hooks {
			var n atomic.Int64
			return hooks{afterCommit: func() error {
				if crashed() || n.Add(1) == 7 {
					crash()
					return errCrash
				}
				return nil
			}}
		}},
		{"between Parquet write and rename", func(crashed func() bool, crash func()) hooks {
			var n atomic.Int64
			return hooks{beforeRename: func(output, _ string) error {
				if crashed() || (output == "daily_sales" && n.Add(1) == 5) {
					crash()
					return errCrash
				}
				return nil
			}}
		}},
		{"between rename and state commit", func(crashed func() bool, crash func()) hooks {
			var n atomic.Int64
			return hooks{beforeFlushCommit: func(output string) error {
				if crashed() || (output == "customer_ltv" && n.Add(1) == 3) {
					crash()
					return errCrash
				}
				return nil
			}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			distinct, stream := genOrders(uint64(len(tc.name)), 1500)
			var dead atomic.Bool
			crashed := make(chan struct{})
			crash := func() {
				if !dead.Swap(true) {
					close(crashed)
				}
			}
			r := b.start(t, b.config(), tc.hook(dead.Load, crash))
			last := b.publish(t, stream)
			select {
			case <-crashed:
			case <-time.After(60 * time.Second):
				t.Fatal("the crash point was never reached")
			}
			r.kill(t)

			r = b.start(t, b.config(), hooks{})
			// Messages the killed worker held come back only after their
			// nak backoff or AckWait, possibly after the last sequence was
			// committed: wait for every record to be accounted for.
			require.Eventually(t, func() bool {
				st := r.agg.Stats()
				return st.Records+st.Duplicates >= int64(len(stream))
			}, 90*time.Second, 20*time.Millisecond, "every record stored or counted as a duplicate")
			waitFlushed(t, r.agg, b.dataDir, last)
			require.Equal(t, int64(len(distinct)), r.agg.Stats().Records)
			// Redelivered records are not duplicates: records + duplicates
			// is what was sent, whatever came twice after the crash.
			require.Equal(t, int64(len(stream)-len(distinct)), r.agg.Stats().Duplicates)
			requireNoTempFiles(t, b.dataDir)
			requireMartsEqualBatch(t, b.dataDir, distinct)
			requireLakeEqual(t, b.dataDir, distinct)
		})
	}
}

func TestAggregateMartDefinitionChange(t *testing.T) {
	t.Parallel()
	b := setup(t)
	distinct, stream := genOrders(3, 600)
	r := b.start(t, b.config(), hooks{})
	last := b.publish(t, stream)
	waitFlushed(t, r.agg, b.dataDir, last)
	r.stop(t)

	// Re-partition daily_sales by country: the mart is rebuilt from the state.
	cfg := b.config()
	cfg.Marts[0].PartitionBy = []string{"country"}
	r = b.start(t, cfg, hooks{})
	waitFlushed(t, r.agg, b.dataDir, last)
	_, err := os.Stat(filepath.Join(b.dataDir, "marts", "daily_sales", "country=US", "data.parquet"))
	require.NoError(t, err)
	requireMartsEqualBatch(t, b.dataDir, distinct)
}

func TestCheckMarts(t *testing.T) {
	t.Parallel()
	ds := []DatasetConfig{shopDataset()}
	require.NoError(t, CheckMarts(ds, shopMarts()))
	for _, tc := range []struct {
		name string
		mart Mart
		want string
	}{
		{"unknown column", Mart{Name: "bad", Dataset: "orders", SQL: "SELECT nope FROM orders"}, "mart bad"},
		{"unknown dataset", Mart{Name: "bad", Dataset: "users", SQL: "SELECT 1"}, `unknown dataset "users"`},
		{"partition not selected", Mart{Name: "bad", Dataset: "orders", SQL: "SELECT country, count(*) AS n FROM orders GROUP BY 1", PartitionBy: []string{"day"}}, "partition column day"},
		{"not a select", Mart{Name: "bad", Dataset: "orders", SQL: "DELETE FROM orders"}, "must be a SELECT"},
		{"two statements", Mart{Name: "bad", Dataset: "orders", SQL: "SELECT 1; DROP TABLE orders"}, "one SELECT"},
		{"syntax", Mart{Name: "bad", Dataset: "orders", SQL: "SELECT FROM WHERE"}, "mart bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckMarts(ds, append(shopMarts(), tc.mart))
			require.ErrorIs(t, err, ErrBadMart)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"no data dir", func(c *Config) { c.DataDir = "" }, "no data dir"},
		{"no key", func(c *Config) { c.Dataset.Key = "" }, "no key"},
		{"bad type", func(c *Config) { c.Dataset.Schema = append(c.Dataset.Schema, Column{"tags", "VARCHAR[]"}) }, "unsupported column type"},
		{"reserved column", func(c *Config) { c.Dataset.Schema = append(c.Dataset.Schema, Column{"_jf_key", "VARCHAR"}) }, "bad column name"},
		{"bad memory limit", func(c *Config) { c.MemoryLimit = "1GB'; DROP" }, "memory limit"},
		{"two statements", func(c *Config) { c.Marts[0].SQL = "SELECT 1; SELECT 2" }, "one SELECT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{DataDir: "x", Dataset: shopDataset(), Marts: shopMarts()}
			tc.modify(&cfg)
			_, err := New(cfg)
			require.ErrorIs(t, err, ErrInvalidConfig)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func requireNoTempFiles(t *testing.T, dataDir string) {
	t.Helper()
	for _, sub := range []string{"marts", "lake"} {
		err := filepath.WalkDir(filepath.Join(dataDir, sub), func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			require.False(t, strings.HasPrefix(d.Name(), marts.TempPrefix), "temp file left: %s", path)
			return nil
		})
		require.NoError(t, err)
	}
}

// batchDB loads the distinct records into an in-memory DuckDB table.
func batchDB(t *testing.T, distinct []order) *sql.DB {
	t.Helper()
	db, err := openDuckDB("", nil)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	ds := shopDataset()
	cols := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = c.Name + " " + c.Type
	}
	_, err = db.Exec("CREATE TABLE orders (" + strings.Join(cols, ", ") + ")")
	require.NoError(t, err)
	tx, err := db.Begin()
	require.NoError(t, err)
	for _, o := range distinct {
		var email any
		if o.EmailHash != "" {
			email = o.EmailHash
		}
		_, err := tx.Exec("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?)", o.OrderID, o.CustomerID, o.Amount, o.Currency, o.AmountUSD, o.Country, o.TS, email)
		require.NoError(t, err)
	}
	require.NoError(t, tx.Commit())
	return db
}

// requireMartsEqualBatch compares every row of each mart's Parquet files
// with the mart's SQL run once over the distinct records.
func requireMartsEqualBatch(t *testing.T, dataDir string, distinct []order) {
	t.Helper()
	db := batchDB(t, distinct)
	for _, m := range shopMarts() {
		man, err := marts.ReadManifest(marts.MartPath(dataDir, m.Name))
		require.NoError(t, err)
		want := queryAll(t, db, fmt.Sprintf("SELECT * FROM (%s) ORDER BY ALL", m.SQL))
		got := queryAll(t, db, fmt.Sprintf("SELECT %s FROM %s ORDER BY ALL", columnList(man), readParquetSQL(man)))
		require.Equal(t, len(want), len(got), "mart %s rows", m.Name)
		require.Equal(t, int64(len(want)), man.Rows, "mart %s manifest rows", m.Name)
		for i := range want {
			requireRowEqual(t, want[i], got[i], "mart %s row %d", m.Name, i)
		}
	}
}

func requireLakeEqual(t *testing.T, dataDir string, distinct []order) {
	t.Helper()
	db := batchDB(t, distinct)
	man, err := marts.ReadManifest(marts.LakePath(dataDir, "orders"))
	require.NoError(t, err)
	want := queryAll(t, db, "SELECT *, CAST(ts AS DATE) AS date FROM orders ORDER BY ALL")
	got := queryAll(t, db, fmt.Sprintf("SELECT %s FROM %s ORDER BY ALL", columnList(man), readParquetSQL(man)))
	require.Equal(t, len(want), len(got))
	require.Equal(t, int64(len(want)), man.Rows)
	for i := range want {
		requireRowEqual(t, want[i], got[i], "lake row %d", i)
	}
}

func columnList(m marts.Manifest) string {
	names := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		names[i] = ident(c.Name)
	}
	return strings.Join(names, ", ")
}

func readParquetSQL(m marts.Manifest) string {
	if len(m.PartitionBy) == 0 {
		return fmt.Sprintf("read_parquet(%s)", literal(m.Glob()))
	}
	types := map[string]string{}
	for _, c := range m.Columns {
		types[c.Name] = c.Type
	}
	hive := make([]string, len(m.PartitionBy))
	for i, p := range m.PartitionBy {
		hive[i] = fmt.Sprintf("%s: %s", literal(p), types[p])
	}
	return fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types = {%s})", literal(m.Glob()), strings.Join(hive, ", "))
}

func queryAll(t *testing.T, db *sql.DB, q string) [][]any {
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

// requireRowEqual compares exactly, except that doubles may differ in the
// last bits: a sum's rounding depends on the order rows are added in.
func requireRowEqual(t *testing.T, want, got []any, msg string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want), fmt.Sprintf(msg, args...))
	for i := range want {
		switch w := want[i].(type) {
		case float64:
			g, ok := got[i].(float64)
			require.True(t, ok, fmt.Sprintf(msg, args...))
			require.InDelta(t, w, g, 1e-9*math.Max(1, math.Abs(w)), fmt.Sprintf(msg, args...)+fmt.Sprintf(" column %d", i))
		case time.Time:
			g, ok := got[i].(time.Time)
			require.True(t, ok, fmt.Sprintf(msg, args...))
			require.True(t, w.Equal(g), fmt.Sprintf(msg, args...)+fmt.Sprintf(" column %d: %s != %s", i, w, g))
		default:
			require.Equal(t, w, got[i], fmt.Sprintf(msg, args...)+fmt.Sprintf(" column %d", i))
		}
	}
}

// An aggregator that closes and reopens its state every few commits (to
// give back what DuckDB keeps per commit) loses nothing and counts every
// duplicate, with batches and flushes running on while it does.
func TestAggregateRecyclesItsState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	distinct, stream := genOrders(7, 3000)
	cfg := b.config()
	cfg.RecycleCommits = 3
	var recycles atomic.Int64
	r := b.start(t, cfg, hooks{afterRecycle: func() { recycles.Add(1) }})
	last := b.publish(t, stream)
	waitFlushed(t, r.agg, b.dataDir, last)
	// Duplicates come throughout the stream, so keys committed before a
	// recycle were found after it.
	require.GreaterOrEqual(t, recycles.Load(), int64(3), "recycles")

	s := r.agg.Stats()
	require.Equal(t, int64(len(distinct)), s.Records)
	require.Equal(t, int64(len(stream)-len(distinct)), s.Duplicates)
	requireMartsEqualBatch(t, b.dataDir, distinct)
	requireLakeEqual(t, b.dataDir, distinct)
}
