package aggregate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseMemoryLimit(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"1GB": 1e9, "512MB": 512e6, "2 GiB": 2 << 30, "1.5gb": 1.5e9, "64MiB": 64 << 20, "1000": 1000, "100KB": 1e5,
	} {
		got, err := ParseMemoryLimit(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "GB", "-1GB", "0MB", "12 parsecs", "80%", "1e3GB"} {
		_, err := ParseMemoryLimit(bad)
		require.ErrorIs(t, err, ErrInvalidConfig, bad)
	}
}

func TestShareMemoryLimit(t *testing.T) {
	t.Parallel()
	got, err := ShareMemoryLimit("1GiB", 4)
	require.NoError(t, err)
	require.Equal(t, "262144KiB", got)
	got, err = ShareMemoryLimit("64MB", 16) // 4 MB each: raised to the floor
	require.NoError(t, err)
	require.Equal(t, "32768KiB", got)
	_, err = ShareMemoryLimit("lots", 2)
	require.ErrorIs(t, err, ErrInvalidConfig)
}

// DuckDB takes the share as written and reports the same limit.
func TestShareMemoryLimitIsDuckDBs(t *testing.T) {
	t.Parallel()
	share, err := ShareMemoryLimit("1GiB", 4)
	require.NoError(t, err)
	db, err := openDuckDB("", map[string]string{"memory_limit": share})
	require.NoError(t, err)
	defer db.Close()
	var got string
	require.NoError(t, db.QueryRow(`SELECT current_setting('memory_limit')`).Scan(&got))
	require.Equal(t, "256.0 MiB", got)
}
