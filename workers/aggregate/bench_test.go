package aggregate

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// cpuTime is the process's CPU time: DuckDB's threads included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchOrders makes shop clean records as the transform step writes them:
// unique order ids from next on (every 50th a duplicate of the one before),
// event time a minute apart, 1000 customers, five countries.
type benchOrders struct{ next int }

func (g *benchOrders) batch(dst [][]byte, n int) [][]byte {
	dst = dst[:0]
	t0 := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	countries := []string{"US", "DE", "GB", "FR", "JP"}
	for range n {
		i := g.next
		if i%50 == 49 {
			i-- // a duplicate
		}
		g.next++
		b := make([]byte, 0, 200)
		b = append(b, `{"order_id":"o-`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","customer_id":"c-`...)
		b = strconv.AppendInt(b, int64(i%1000), 10)
		amount := float64(i%997) + 0.25
		b = append(b, `","amount":`...)
		b = strconv.AppendFloat(b, amount, 'g', -1, 64)
		b = append(b, `,"currency":"EUR","country":"`...)
		b = append(b, countries[i%len(countries)]...)
		b = append(b, `","ts":"`...)
		b = t0.Add(time.Duration(i)*time.Minute).AppendFormat(b, time.RFC3339)
		b = append(b, `","email_hash":"5e884898da28047151d0e56f8dc62927","amount_usd":`...)
		b = strconv.AppendFloat(b, amount*1.08, 'g', -1, 64)
		b = append(b, '}')
		dst = append(dst, b)
	}
	return dst
}

// aggregateBench is the aggregate step of one process fed directly: eight
// partitions, the shop marts, the default flush policies, run in the
// benchmark's goroutine so every bit of work is counted.
type aggregateBench struct {
	eng    *Engine
	in     *Intake
	b      *MartBuilder
	seq    uint64
	parts  int
	lines  [][]byte
	orders benchOrders
	since  int // records committed since the last lake flush
	// CPU spent committing, flushing the lake and building the marts.
	commitCPU, flushCPU, buildCPU time.Duration
}

const benchPartitions = 8

func openAggregateBench(tb testing.TB, dataDir string) *aggregateBench {
	tb.Helper()
	// JETFLEET_LOG_LEVEL=debug shows each flush and write with its time.
	log := zerolog.Nop()
	if lvl, err := zerolog.ParseLevel(os.Getenv("JETFLEET_LOG_LEVEL")); err == nil && lvl != zerolog.NoLevel {
		log = zerolog.New(os.Stderr).Level(lvl)
	}
	eng, err := OpenEngine(EngineConfig{MemoryLimit: "1GB", Threads: 1, TempDir: filepath.Join(dataDir, "duck")})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := NewMartBuilder(MartBuilderConfig{Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Marts: shopMarts(), Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	in, err := NewIntake(IntakeConfig{Engine: eng, DataDir: dataDir, Dataset: shopDataset(), Builder: b, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	for p := range benchPartitions {
		if err := in.OpenPartition(context.Background(), p); err != nil {
			tb.Fatal(err)
		}
	}
	return &aggregateBench{eng: eng, in: in, b: b, parts: benchPartitions}
}

// commit commits records in batches of about batch records per commit:
// batch*parts records are made, split by key partition, and each
// partition's share is one commit, as a partition's worker commits what
// its consumer delivered. The lake is flushed (and the marts built) every
// FlushRecords records, as the intake's policy does.
func (a *aggregateBench) commit(tb testing.TB, batch int) {
	n := batch * a.parts
	a.lines = a.orders.batch(a.lines, n)
	perPart := make([][]workers.Record, a.parts)
	for _, l := range a.lines {
		a.seq++
		h := hashKey(l[14 : bytesIndex(l[14:], '"')+14])
		p := int(h.lo % uint64(a.parts))
		perPart[p] = append(perPart[p], workers.Record{Data: l, Seq: a.seq, Published: time.Now()})
	}
	ctx := context.Background()
	c := cpuTime()
	for p, recs := range perPart {
		if _, err := (batchHandler{in: a.in, p: p}).HandleBatch(ctx, recs); err != nil {
			tb.Fatal(err)
		}
	}
	a.commitCPU += cpuTime() - c
	a.since += n
	if a.since >= a.in.cfg.FlushRecords {
		a.flush(tb)
	}
}

func (a *aggregateBench) flush(tb testing.TB) {
	ctx := context.Background()
	c := cpuTime()
	if err := a.in.Flush(ctx); err != nil {
		tb.Fatal(err)
	}
	c2 := cpuTime()
	if err := a.b.Build(ctx); err != nil {
		tb.Fatal(err)
	}
	a.flushCPU += c2 - c
	a.buildCPU += cpuTime() - c2
	a.since = 0
}

func (a *aggregateBench) close(tb testing.TB) {
	ctx := context.Background()
	if err := a.in.Stop(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := a.b.Stop(ctx); err != nil {
		tb.Fatal(err)
	}
	if err := a.eng.Close(); err != nil {
		tb.Fatal(err)
	}
}

func bytesIndex(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// BenchmarkAggregate is the aggregate step alone: decoded clean records
// in, committed (journal synced), de-duplicated, flushed to the lake and
// folded into the shop marts, which are written out, with 100k and 5M
// records already stored, in commits of 1,000 and 10,000 records. An
// operation is 100,000 records (one lake flush and mart build, as the
// default policy flushes); it reports CPU per record (the process's:
// DuckDB's threads included) and checks the step holds every record.
func BenchmarkAggregate(b *testing.B) {
	const perOp = 100_000
	root := b.TempDir()
	fixtures := map[int]string{}
	// fixture builds (once) a data dir holding stored records.
	fixture := func(b *testing.B, stored int) string {
		if dir, ok := fixtures[stored]; ok {
			return dir
		}
		dir := filepath.Join(root, strconv.Itoa(stored))
		a := openAggregateBench(b, dir)
		for a.orders.next < stored {
			a.commit(b, 10_000/benchPartitions)
		}
		a.close(b)
		fixtures[stored] = dir
		return dir
	}
	for _, stored := range []int{100_000, 5_000_000} {
		for _, batch := range []int{1000, 10_000} {
			b.Run(fmt.Sprintf("stored=%d/batch=%d", stored, batch), func(b *testing.B) {
				dir := filepath.Join(b.TempDir(), "data")
				if err := copyDir(fixture(b, stored), dir); err != nil {
					b.Fatal(err)
				}
				a := openAggregateBench(b, dir)
				a.orders.next, a.seq = stored, uint64(stored)
				b.ReportAllocs()
				a.commitCPU, a.flushCPU, a.buildCPU = 0, 0, 0
				b.ResetTimer()
				for range b.N {
					for range perOp / (batch * a.parts) {
						a.commit(b, batch)
					}
					a.flush(b)
				}
				b.StopTimer()
				// The step's CPU: the commits, flushes and builds, not the
				// making of the input records nor their routing to
				// partitions (the server's subject mapping does that).
				cpu := a.commitCPU + a.flushCPU + a.buildCPU
				records := b.N * (perOp / (batch * a.parts)) * batch * a.parts
				b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(records), "us_cpu/record")
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e3/float64(records), "us/record")
				per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 / float64(records) }
				b.ReportMetric(per(a.commitCPU), "us_commit/record")
				b.ReportMetric(per(a.flushCPU), "us_lake/record")
				b.ReportMetric(per(a.buildCPU), "us_marts/record")
				want := a.orders.next - a.orders.next/50
				if got := a.in.Stats().Records; got != int64(want) {
					b.Fatalf("%d records stored, want %d", got, want)
				}
				a.close(b)
				requireMartsCount(b, dir, int64(want))
			})
		}
	}
}

// requireMartsCount checks that each shop mart counts every distinct
// record once: a benchmark counts only with its output verified.
func requireMartsCount(tb testing.TB, dataDir string, want int64) {
	tb.Helper()
	db, err := duckdb.Open("", nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	for _, m := range shopMarts() {
		man, err := marts.ReadManifest(marts.MartPath(dataDir, m.Name))
		if err != nil {
			tb.Fatal(err)
		}
		var got int64
		q := fmt.Sprintf("SELECT sum(orders)::BIGINT FROM read_parquet(%s)", duckdb.Literal(filepath.Join(man.Dir, "**", marts.DataFile)))
		if err := db.QueryRow(q).Scan(&got); err != nil {
			tb.Fatal(err)
		}
		if got != want {
			tb.Fatalf("mart %s counts %d orders, want %d", m.Name, got, want)
		}
	}
}

func copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

// BenchmarkCommit is a partition's commit alone: decode, de-duplicate,
// journal (synced) a batch of 1,000 records.
func BenchmarkCommit(b *testing.B) {
	dir := b.TempDir()
	a := openAggregateBench(b, dir)
	defer a.close(b)
	var g benchOrders
	const n = 1000
	recs := make([]workers.Record, n)
	b.ReportAllocs()
	b.ResetTimer()
	var cpu time.Duration
	for range b.N {
		b.StopTimer()
		lines := g.batch(nil, n)
		for i, l := range lines {
			a.seq++
			recs[i] = workers.Record{Data: l, Seq: a.seq, Published: time.Now()}
		}
		b.StartTimer()
		c := cpuTime()
		if _, err := (batchHandler{in: a.in, p: 0}).HandleBatch(context.Background(), recs); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "ns_cpu/record")
}
