package aggregate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// fleet is one process's aggregate step of the shop dataset, fed directly
// (no NATS): an engine, an intake and a builder.
type fleet struct {
	t       *testing.T
	dataDir string
	eng     *Engine
	in      *Intake
	b       *MartBuilder
	log     zerolog.Logger
}

func startFleet(t *testing.T, dataDir string, parts ...int) *fleet {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	eng, err := OpenEngine(EngineConfig{MemoryLimit: "256MB", Threads: 1, TempDir: filepath.Join(t.TempDir(), "duck")})
	require.NoError(t, err)
	b, err := NewMartBuilder(MartBuilderConfig{
		Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Marts: shopMarts(),
		FlushRecords: 300, FlushInterval: 40 * time.Millisecond, Interval: 20 * time.Millisecond, Logger: log,
	})
	require.NoError(t, err)
	in, err := NewIntake(IntakeConfig{
		Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Builder: b,
		FlushRecords: 500, FlushInterval: 30 * time.Millisecond, Logger: log,
	})
	require.NoError(t, err)
	require.NoError(t, b.Start(t.Context()))
	require.NoError(t, in.Start(t.Context()))
	for _, p := range parts {
		require.NoError(t, in.OpenPartition(t.Context(), p))
	}
	f := &fleet{t: t, dataDir: dataDir, eng: eng, in: in, b: b, log: log}
	t.Cleanup(func() { f.stop() })
	return f
}

func (f *fleet) stop() {
	if f.eng == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(f.t, f.in.Stop(ctx))
	require.NoError(f.t, f.b.Stop(ctx))
	require.NoError(f.t, f.eng.Close())
	f.eng = nil
}

// feed commits records as messages of partition p from seq on, n records
// per message (bulk when n > 1); it returns the next seq.
func (f *fleet) feed(p int, records [][]byte, seq uint64, n int) uint64 {
	f.t.Helper()
	h := batchHandler{in: f.in, p: p}
	var batch []workers.Record
	for i := 0; i < len(records); i += n {
		end := min(i+n, len(records))
		for j := i; j < end; j++ {
			batch = append(batch, workers.Record{Data: records[j], Seq: seq, Index: j - i, Bulk: n > 1, Published: time.Now()})
		}
		seq++
	}
	rejects, err := h.HandleBatch(f.t.Context(), batch)
	require.NoError(f.t, err)
	require.Empty(f.t, rejects)
	return seq
}

// waitMarts waits until the marts hold everything committed.
func (f *fleet) waitMarts() {
	f.t.Helper()
	want := f.in.Stats().CommittedSeq
	embeddedtest.WaitFor(f.t, 30*time.Second, fmt.Sprintf("marts to hold seq %d", want), func() bool {
		ms, err := marts.ReadManifests(f.dataDir)
		if err != nil || len(ms) < 3 {
			return false
		}
		for _, m := range ms {
			if m.LastSeq < want {
				return false
			}
		}
		return true
	})
}

// requireShopMarts checks the marts against the orders, computed in Go.
func requireShopMarts(t *testing.T, dataDir string, distinct []order) {
	t.Helper()
	db, err := duckdb.Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	type day struct {
		orders  int64
		revenue float64
	}
	wantDays := map[string]day{}
	type cust struct {
		orders  int64
		revenue float64
	}
	wantCust := map[string]cust{}
	for _, o := range distinct {
		ts, err := time.Parse(time.RFC3339, o.TS)
		require.NoError(t, err)
		k := ts.UTC().Format("2006-01-02") + "|" + o.Country
		d := wantDays[k]
		d.orders++
		d.revenue += o.AmountUSD
		wantDays[k] = d
		c := wantCust[o.CustomerID]
		c.orders++
		c.revenue += o.AmountUSD
		wantCust[o.CustomerID] = c
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT strftime(day, '%%Y-%%m-%%d') || '|' || country, orders, revenue_usd FROM read_parquet(%s, hive_partitioning = true)`,
		duckdb.Literal(filepath.Join(dataDir, "marts", "daily_sales", "**", "*.parquet"))))
	require.NoError(t, err)
	gotDays := map[string]day{}
	for rows.Next() {
		var k string
		var d day
		require.NoError(t, rows.Scan(&k, &d.orders, &d.revenue))
		gotDays[k] = d
	}
	require.NoError(t, rows.Err())
	requireSameRows(t, "daily_sales", wantDays, gotDays, func(a, b day) bool { return a.orders == b.orders && nearlyEqual(a.revenue, b.revenue) })
	rows, err = db.Query(fmt.Sprintf(`SELECT customer_id, orders, revenue_usd FROM read_parquet(%s)`, duckdb.Literal(filepath.Join(dataDir, "marts", "customer_ltv", "data.parquet"))))
	require.NoError(t, err)
	gotCust := map[string]cust{}
	for rows.Next() {
		var k string
		var c cust
		require.NoError(t, rows.Scan(&k, &c.orders, &c.revenue))
		gotCust[k] = c
	}
	require.NoError(t, rows.Err())
	requireSameRows(t, "customer_ltv", wantCust, gotCust, func(a, b cust) bool { return a.orders == b.orders && nearlyEqual(a.revenue, b.revenue) })
	var lake int64
	require.NoError(t, db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM read_parquet(%s)`, duckdb.Literal(filepath.Join(dataDir, "lake", "orders", "*", "*.parquet")))).Scan(&lake))
	require.Equal(t, int64(len(distinct)), lake, "lake rows")
}

func nearlyEqual(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(a)) }

func requireSameRows[V any](t *testing.T, name string, want, got map[string]V, eq func(a, b V) bool) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s: want %+v", k, w))
		} else if !eq(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s: want %+v, got %+v", k, w, g))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s: %+v", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 10 {
		diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
	}
	require.Empty(t, diffs, "%s differs:\n%s", name, strings.Join(diffs, "\n"))
}

var _ = sql.ErrNoRows

// splitByKey divides records between n partitions by their key, as the
// clean stage's partition function does: a key always in one partition.
func splitByKey(records [][]byte, n int) [][][]byte {
	out := make([][][]byte, n)
	for _, r := range records {
		var o order
		if err := jsonUnmarshal(r, &o); err != nil {
			panic(err)
		}
		p := int(hashKey([]byte(o.OrderID)).lo % uint64(n))
		out[p] = append(out[p], r)
	}
	return out
}

func TestIntakeAndBuilderSmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	f := startFleet(t, dir, 0, 1)
	distinct, stream := genOrders(1, 2000)
	byPart := splitByKey(stream, 2)
	seq := f.feed(0, byPart[0], 1, 1)
	f.feed(1, byPart[1], seq, 25)
	f.waitMarts()
	requireShopMarts(t, dir, distinct)
	st := f.in.Stats()
	require.Equal(t, int64(len(distinct)), st.Records)
	require.Equal(t, int64(len(stream)-len(distinct)), st.Duplicates)
}

func testLog(t *testing.T) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o644))
}
