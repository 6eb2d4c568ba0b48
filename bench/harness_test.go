package bench_test

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/bench"
)

// TestRunVerifies runs the harness end to end on a small input in each
// mode: real embedded NATS, real DuckDB, marts compared with the batch.
func TestRunVerifies(t *testing.T) {
	t.Parallel()
	events := 2000
	if testing.Short() {
		events = 500
	}
	for _, mode := range []bench.Mode{bench.ModeRecord, bench.ModeBulk} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			res, err := bench.Run(t.Context(), bench.Config{
				Mode: mode, Events: events, BulkSize: 50, Seed: 7,
				InvalidShare: 0.05, DuplicateShare: 0.02,
				DataDir: t.TempDir(), MemoryLimit: "256MB",
				Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
			})
			require.NoError(t, err)
			require.Empty(t, res.Mismatches)
			require.True(t, res.Verified)
			require.Equal(t, res.Generated, res.Observed)
			require.Positive(t, res.Generated.Invalid)
			require.Positive(t, res.Generated.Duplicate)
			require.Len(t, res.Marts, 2)
			for _, m := range res.Marts {
				require.True(t, m.Equal, m.Name)
				require.Positive(t, m.Rows, m.Name)
			}
			require.Positive(t, res.EndToEnd.RecordsPerSec)
			require.Positive(t, res.RawHop.RecordsPerSec)
			require.Positive(t, res.BatchSeconds)
			require.Positive(t, res.PeakRSSBytes)
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  bench.Config
	}{
		{"no events", bench.Config{DataDir: "x"}},
		{"bad mode", bench.Config{Mode: "stream", Events: 1, DataDir: "x"}},
		{"shares", bench.Config{Events: 1, DataDir: "x", InvalidShare: 0.6, DuplicateShare: 0.5}},
		{"no data dir", bench.Config{Events: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := bench.Run(t.Context(), tc.cfg)
			require.ErrorIs(t, err, bench.ErrInvalidConfig)
		})
	}
}
