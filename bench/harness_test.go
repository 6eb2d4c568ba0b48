package bench_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

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

			// Every committed record has a latency, and the figures are
			// ordered as percentiles must be.
			require.GreaterOrEqual(t, res.Latency.Count, res.Observed.Valid)
			require.Positive(t, res.Latency.P50Ms)
			require.LessOrEqual(t, res.Latency.P50Ms, res.Latency.P90Ms)
			require.LessOrEqual(t, res.Latency.P90Ms, res.Latency.P99Ms)
			require.LessOrEqual(t, res.Latency.P99Ms, res.Latency.MaxMs)
			var bucketed int64
			for _, b := range res.Latency.Buckets {
				bucketed += b.Count
			}
			require.Equal(t, res.Latency.Count, bucketed, "buckets cover every record")

			// Per-step rates follow the records down the pipeline.
			require.Len(t, res.Steps, 3)
			require.Equal(t, int64(events)-int64(res.Generated.Duplicate)*boolInt(mode == bench.ModeRecord), res.Steps[0].Records)
			require.Equal(t, uint64(res.Generated.Invalid), res.Steps[0].DeadLetters)
			for _, st := range res.Steps {
				require.Positive(t, st.RecordsPerSec, st.Step)
			}
			require.NotEmpty(t, res.Samples)
			last := res.Samples[len(res.Samples)-1]
			require.Equal(t, int64(events), last.Published)
			for _, st := range last.Steps {
				require.Zero(t, st.Lag, "idle at the end")
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// TestRunOpenLoopForADuration publishes at a fixed rate for a time with
// two validate replicas, and still verifies.
func TestRunOpenLoopForADuration(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs for seconds")
	}
	res, err := bench.Run(t.Context(), bench.Config{
		Mode: bench.ModeRecord, Duration: 2 * time.Second, Rate: 500, Seed: 3,
		InvalidShare: 0.05, DuplicateShare: 0.02, Workers: map[string]int{"validate": 2},
		DataDir: t.TempDir(), MemoryLimit: "256MB", SampleEvery: 100 * time.Millisecond,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	require.NoError(t, err)
	require.Empty(t, res.Mismatches)
	require.True(t, res.Verified)
	// Open loop: the schedule, not the server, sets how many went out.
	require.InDelta(t, 1000, res.Events, 2)
	require.Equal(t, 500.0, res.Rate)
	require.Equal(t, []bench.StepWorkers{{Step: "validate", Replicas: 2}, {Step: "transform", Replicas: 1}, {Step: "aggregate", Replicas: 1}}, res.Workers)
	require.Positive(t, res.Latency.Count)

	dir := t.TempDir()
	path, err := res.WriteReport(dir)
	require.NoError(t, err)
	md, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(md), "verified")
	require.Contains(t, string(md), "--rate 500")
	pictures, err := filepath.Glob(filepath.Join(dir, "*.svg"))
	require.NoError(t, err)
	require.Len(t, pictures, 2, "latency histogram and timeline")
	for _, p := range pictures {
		require.Contains(t, string(md), filepath.Base(p))
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		requireWellFormedXML(t, b)
	}
}

func requireWellFormedXML(t *testing.T, b []byte) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return
		}
		require.NoError(t, err)
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
		{"negative rate", bench.Config{Events: 1, DataDir: "x", Rate: -1}},
		{"unknown step", bench.Config{Events: 1, DataDir: "x", Workers: map[string]int{"load": 2}}},
		{"zero replicas", bench.Config{Events: 1, DataDir: "x", Workers: map[string]int{"validate": 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := bench.Run(t.Context(), tc.cfg)
			require.ErrorIs(t, err, bench.ErrInvalidConfig)
		})
	}
}
