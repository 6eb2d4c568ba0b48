package aggregate

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// benchAggregator is an aggregator fed directly (no NATS), flushing only
// when told to.
func benchAggregator(b *testing.B) *Aggregator {
	b.Helper()
	agg, err := New(Config{
		DataDir: b.TempDir(), Dataset: shopDataset(), Marts: shopMarts(), MemoryLimit: "1GB",
		FlushRecords: 1 << 40, FlushInterval: time.Hour, Logger: zerolog.Nop(),
	})
	require.NoError(b, err)
	require.NoError(b, agg.Start(b.Context()))
	b.Cleanup(func() { agg.crash() })
	return agg
}

// benchBatch makes n records with keys from first on, spread over days.
func benchBatch(first, n, days int, seq uint64) []workers.Record {
	batch := make([]workers.Record, n)
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		k := first + i
		ts := start.Add(time.Duration(k%days)*24*time.Hour + time.Duration(k%86400)*time.Second)
		batch[i] = workers.Record{
			Data: fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-%d","amount":%d.5,"currency":"USD","amount_usd":%d.5,"country":"%s","ts":"%s"}`,
				k, k%5000, k%300, k%300, []string{"US", "DE", "GB", "FR", "JP"}[k%5], ts.Format(time.RFC3339)),
			Seq: seq, Published: ts,
		}
	}
	return batch
}

// BenchmarkIngest measures records/s committed into the DuckDB state
// (decode, append, de-duplicate, commit), in batches of 256 (the
// runtime's default fetch) and 1024 (the aggregate worker's), with one
// duplicate batch in ten.
func BenchmarkIngest(b *testing.B) {
	for _, size := range []int{256, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchIngest(b, size) })
	}
}

func benchIngest(b *testing.B, size int) {
	agg := benchAggregator(b)
	ctx := context.Background()
	records := 0
	for i := 0; b.Loop(); i++ {
		first := i * size
		if i%10 == 9 {
			first = (i - 1) * size // re-delivered batch: all duplicates
		}
		_, err := agg.handleBatch(ctx, benchBatch(first, size, 30, uint64(i+1)))
		if err != nil {
			b.Fatal(err)
		}
		records += size
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkFlush measures a flush of daily_sales (30 day partitions) over
// a state of 200k records after a batch that touches the given number of
// partitions: the cost per partition rewritten.
func BenchmarkFlush(b *testing.B) {
	for _, touched := range []int{1, 10} {
		b.Run(fmt.Sprintf("partitions=%d", touched), func(b *testing.B) {
			agg := benchAggregator(b)
			ctx := context.Background()
			const state = 200_000
			for first := 0; first < state; first += 4096 {
				_, err := agg.handleBatch(ctx, benchBatch(first, 4096, 30, 1))
				require.NoError(b, err)
			}
			mart := agg.outputs[0]
			require.Equal(b, "daily_sales", mart.name)
			require.NoError(b, agg.flushOutput(ctx, agg.flushConn, mart))
			next := state + 4096
			for b.Loop() {
				b.StopTimer()
				_, err := agg.handleBatch(ctx, benchBatch(next, 100*touched, touched, 2))
				require.NoError(b, err)
				next += 100 * touched
				b.StartTimer()
				if err := agg.flushOutput(ctx, agg.flushConn, mart); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/float64(touched), "ms/partition")
		})
	}
}

// dayBatch makes n records with keys from first on, all on day (days
// after 2026-10-01), over 5 countries and 5000 customers.
func dayBatch(first, n, day int, seq uint64) []workers.Record {
	batch := benchBatch(first, n, 1, seq)
	shift := time.Duration(day) * 24 * time.Hour
	for i := range batch {
		k := first + i
		ts := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC).Add(shift + time.Duration(k%86400)*time.Second)
		batch[i].Data = fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-%d","amount":%d.5,"currency":"USD","amount_usd":%d.5,"country":"%s","ts":"%s"}`,
			k, k%5000, k%300, k%300, []string{"US", "DE", "GB", "FR", "JP"}[k%5], ts.Format(time.RFC3339))
		batch[i].Published = ts
	}
	return batch
}

// BenchmarkMartBuildIncremental measures a mart build of a partitioned
// dataset after one new lake file (100 records of one day), over a lake
// of 200 files (200k records over 30 days) that two partitions wrote: a
// build's cost should follow the new file, not the lake.
func BenchmarkMartBuildIncremental(b *testing.B) {
	const files, perFile, days = 200, 1000, 30
	dataDir := b.TempDir()
	ctx := context.Background()
	parts := make([]*Aggregator, 2)
	for p := range parts {
		agg, err := New(Config{
			DataDir: dataDir, Dataset: shopDataset(), MemoryLimit: "256MB", Threads: 1,
			FlushRecords: 1 << 40, FlushInterval: time.Hour, Logger: zerolog.Nop(), Partition: &Partition{Index: p},
		})
		require.NoError(b, err)
		require.NoError(b, agg.Start(ctx))
		b.Cleanup(agg.crash)
		parts[p] = agg
	}
	seq := uint64(0)
	add := func(p, first, n, day int) {
		seq++
		_, err := parts[p].handleBatch(ctx, dayBatch(first, n, day, seq))
		require.NoError(b, err)
		require.NoError(b, parts[p].Flush(ctx))
	}
	for i := range files {
		add(i%2, i*perFile, perFile, i%days)
	}
	mb, err := NewMartBuilder(MartBuilderConfig{
		DataDir: dataDir, Dataset: shopDataset(), Marts: shopMarts(), Partitions: len(parts),
		MemoryLimit: "1GB", Logger: zerolog.Nop(),
	})
	require.NoError(b, err)
	require.NoError(b, mb.Build(ctx))
	next := files * perFile
	for b.Loop() {
		b.StopTimer()
		add(0, next, 100, 5)
		next += 100
		b.StartTimer()
		if err := mb.Build(ctx); err != nil {
			b.Fatal(err)
		}
	}
	for name, rows := range map[string]int64{"daily_sales": days * 5, "customer_ltv": 5000} {
		m, err := marts.ReadManifest(marts.MartPath(dataDir, name))
		require.NoError(b, err)
		require.Equal(b, rows, m.Rows, name)
	}
	lake, err := marts.ReadManifest(marts.LakePath(dataDir, "orders"))
	require.NoError(b, err)
	require.Equal(b, int64(next), lake.Rows)
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/build")
}
