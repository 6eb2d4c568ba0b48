package bench

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

func TestTraceIndexRoundTrip(t *testing.T) {
	for _, i := range []int64{0, 1, 65535, 65536, 1 << 40} {
		tp := traceParent(42, i)
		require.Len(t, tp, 55)
		require.NotEmpty(t, subjects.TraceID(tp), "a valid W3C traceparent")
		got, ok := traceIndex(42, tp)
		require.True(t, ok)
		require.Equal(t, i, got)
		_, ok = traceIndex(43, tp)
		require.False(t, ok, "another run's trace")
	}
	for _, bad := range []string{"", "00-", "00-zz", "01-000000000000002a0000000000000000-0000000000000001-01"} {
		_, ok := traceIndex(42, bad)
		require.False(t, ok, bad)
	}
}

func TestSourceBulkChunksCountRecords(t *testing.T) {
	src := newSource(Config{Mode: ModeBulk, BulkSize: 10, Seed: 1, InvalidShare: 0.1, DuplicateShare: 0.1}, "orders", 7)
	msgs := src.pregenerate(95)
	require.Len(t, msgs, 10)
	total := 0
	for _, m := range msgs {
		total += recordsOf(m)
	}
	require.Equal(t, 95, total)
	require.Equal(t, 5, recordsOf(msgs[9]), "the last chunk holds the rest")
	require.Equal(t, int64(95), src.counts.Valid+src.counts.Invalid+src.counts.Duplicate)
}
