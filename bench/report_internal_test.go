package bench

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSlope(t *testing.T) {
	t.Parallel()
	require.InDelta(t, 2.0, slope([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}), 1e-9)
	require.InDelta(t, 0.0, slope([]float64{0, 1, 2}, []float64{4, 4, 4}), 1e-9)
	require.Zero(t, slope([]float64{1}, []float64{5}))
	require.Zero(t, slope([]float64{1, 1}, []float64{5, 6}), "no spread in x")
}

// A soak report tells memory that keeps growing from memory that levels
// off: the second half's trend is what differs.
func TestFlatnessTellsGrowthFromPlateau(t *testing.T) {
	t.Parallel()
	samples := func(rssAt func(minute float64) float64) []Sample {
		var ss []Sample
		for i := range 40 {
			at := float64(i) * 15 // 10 minutes, a sample each 15s
			ss = append(ss, Sample{At: at, RSSBytes: int64(rssAt(at/60) * (1 << 20)), GoBytes: 50 << 20, Steps: []StepSample{{Lag: 100}}})
		}
		return ss
	}
	_, growing := flatness(samples(func(m float64) float64 { return 200 + 30*m }))
	require.InDelta(t, 30, growing.rssSlope, 0.5)
	_, plateau := flatness(samples(func(m float64) float64 { return 200 + 300*min(m, 3)/3 }))
	require.InDelta(t, 0, plateau.rssSlope, 0.5)
	require.InDelta(t, 50, plateau.goMiB, 0.01)
	require.Zero(t, plateau.lagSlope)

	r := &Result{
		Mode: ModeRecord, Events: 900000, Seed: 1, Rate: 1500, DurationSeconds: 600, MemoryLimit: "256MB",
		Samples: samples(func(m float64) float64 { return 200 }), Latency: Latency{Count: 0},
	}
	path, err := r.WriteReport(t.TempDir())
	require.NoError(t, err)
	md, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Contains(t, string(md), "| resident memory, trend | +0.0 MiB/min | +0.0 MiB/min |")
	require.Contains(t, string(md), "--duration 10m0s")
	require.Contains(t, string(md), "--memory-limit 256MB")
	require.Contains(t, string(md), "--rate 1500")
}
