package aggregate

import (
	"os"
	"path/filepath"
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

// The engine runs with the limit, threads and spill directory it is given,
// and removes the directory when it closes.
func TestEngineSettings(t *testing.T) {
	t.Parallel()
	tmp := filepath.Join(t.TempDir(), "spill")
	eng, err := OpenEngine(EngineConfig{MemoryLimit: "1GiB", Threads: 1, TempDir: tmp})
	require.NoError(t, err)
	var limit, dir string
	var threads int
	require.NoError(t, eng.db.QueryRow(`SELECT current_setting('memory_limit'), current_setting('temp_directory'), current_setting('threads')`).Scan(&limit, &dir, &threads))
	require.Equal(t, "1.0 GiB", limit)
	require.Equal(t, tmp, dir)
	require.Equal(t, 1, threads)
	require.DirExists(t, tmp)
	// A temp dir in use stays; one a killed process left goes.
	stale := filepath.Join(filepath.Dir(tmp), "spill-stale")
	require.NoError(t, os.MkdirAll(stale, 0o755))
	require.NoError(t, RemoveStaleTempDirs(filepath.Dir(tmp), "spill"))
	require.DirExists(t, tmp)
	require.NoDirExists(t, stale)
	require.NoError(t, eng.Close())
	require.NoDirExists(t, tmp)
	_, err = OpenEngine(EngineConfig{MemoryLimit: "1GB'; ATTACH", TempDir: tmp})
	require.ErrorIs(t, err, ErrInvalidConfig)
}
