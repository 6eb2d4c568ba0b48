package pipeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzRFC3339: the fast path gives the instant time.Parse gives, for
// every string it accepts.
func FuzzRFC3339(f *testing.F) {
	for _, s := range []string{
		"2026-10-01T10:00:00Z", "2026-10-01T23:30:00-02:00", "2026-10-02T08:00:00.5+01:00", "0000-01-01T00:00:00+23:59",
		"9999-12-31T23:59:59.123456789123-23:59", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2026-10-01t10:00:00z",
		"2026-10-01T10:00:60Z", "2026-10-01T10:00:00.Z", "2026-10-01T10:00:00+0200", "1969-12-31T23:59:59.999Z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRFC3339(s)
		if !ok {
			return
		}
		want, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err, "time.Parse rejects %q", s)
		require.True(t, want.Equal(got), "%q: %s, want %s", s, got, want)
		require.Equal(t, FormatTime(want), FormatTime(got))
		require.Equal(t, FormatTime(want), string(AppendTime(nil, got)))
	})
}

func TestAppendTime(t *testing.T) {
	t.Parallel()
	for _, tm := range []time.Time{
		time.Date(2026, 10, 2, 1, 30, 0, 0, time.FixedZone("x", 3600)), time.Date(2026, 10, 1, 9, 0, 0, 250_000_000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(-5, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 120, time.UTC),
		time.Unix(0, 0), time.UnixMilli(1790000000123),
	} {
		require.Equal(t, FormatTime(tm), string(AppendTime(nil, tm)))
	}
}
