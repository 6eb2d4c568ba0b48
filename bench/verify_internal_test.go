package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestDiffRows makes sure verification can fail: a run is only as
// trustworthy as the comparison that says "verified: yes".
func TestDiffRows(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	base := [][]any{{day, "US", int64(3), 10.5}}
	for _, tc := range []struct {
		name  string
		got   [][]any
		equal bool
	}{
		{"same", [][]any{{day, "US", int64(3), 10.5}}, true},
		{"same instant in another zone", [][]any{{day.In(time.FixedZone("x", 3600)), "US", int64(3), 10.5}}, true},
		{"float summed in another order", [][]any{{day, "US", int64(3), 10.5 + 1e-12}}, true},
		{"float off", [][]any{{day, "US", int64(3), 10.51}}, false},
		{"count off", [][]any{{day, "US", int64(4), 10.5}}, false},
		{"type differs", [][]any{{day, "US", int32(3), 10.5}}, false},
		{"row missing", nil, false},
		{"row extra", [][]any{{day, "US", int64(3), 10.5}, {day, "DE", int64(1), 1.0}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.equal, diffRows(tc.got, base) == "", diffRows(tc.got, base))
		})
	}
}
