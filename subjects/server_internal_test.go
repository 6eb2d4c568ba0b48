package subjects

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want [3]int
		ok   bool
	}{
		{"2.9.10", [3]int{2, 9, 10}, true},
		{"v2.11.0-beta.1", [3]int{2, 11, 0}, true},
		{"2.12", [3]int{2, 12, 0}, true},
		{"2.15.2+build", [3]int{2, 15, 2}, true},
		{"", [3]int{}, false},
		{"two.nine", [3]int{}, false},
		{"2", [3]int{}, false},
	} {
		got, ok := parseVersion(tc.in)
		require.Equal(t, tc.ok, ok, tc.in)
		if ok {
			require.Equal(t, tc.want, got, tc.in)
		}
	}
	require.Equal(t, "2.11.0", MinServerVersion())
	require.True(t, less([3]int{2, 9, 10}, [3]int{2, 10, 0}))
	require.False(t, less([3]int{2, 11, 0}, [3]int{2, 11, 0}))
}
