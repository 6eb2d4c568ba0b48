package query_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/marts/query"
)

// TestQueryCannotWriteOrEscape tries the ways out of a read-only query
// over the marts: statements that write, attach, load or configure, and
// file readers pointed at paths outside the marts and the lake (directly,
// through "..", through a symlink, or hidden in DESCRIBE and SUMMARIZE).
func TestQueryCannotWriteOrEscape(t *testing.T) {
	t.Parallel()
	b := setup(t)
	marts := filepath.Join(b.dataDir, "marts")
	state := filepath.Join(b.dataDir, "state")
	require.NoError(t, os.MkdirAll(state, 0o750))
	require.NoError(t, os.WriteFile(filepath.Join(state, "orders.csv"), []byte("secret\n42\n"), 0o600))
	require.NoError(t, os.Symlink(state, filepath.Join(marts, "daily_sales", "link")))

	for _, q := range []string{
		"INSERT INTO daily_sales VALUES (1)",
		"UPDATE daily_sales SET orders = 0",
		"DELETE FROM daily_sales",
		"CREATE VIEW v AS SELECT 1",
		"CREATE OR REPLACE MACRO m() AS 1",
		"COPY (SELECT 1) TO '" + filepath.Join(marts, "x.csv") + "'",
		"EXPORT DATABASE '" + filepath.Join(b.dataDir, "dump") + "'",
		"ATTACH '" + filepath.Join(marts, "x.duckdb") + "' AS x",
		"DETACH memory",
		"USE memory",
		"LOAD httpfs",
		"INSTALL httpfs",
		"SET memory_limit = '100GB'",
		"RESET allowed_directories",
		"PRAGMA enable_external_access",
		"CALL pragma_version()",
		"CHECKPOINT",
		"VACUUM",
		"SELECT 1; INSERT INTO x VALUES (1)",
		"WITH x AS (SELECT 1) SELECT 1; COPY (SELECT 1) TO '/tmp/x.csv'",
		"/* SELECT */ COPY (SELECT 1) TO '/tmp/x.csv'",
		"(COPY (SELECT 1) TO '/tmp/x.csv')",
		"WITH x AS (SELECT 1) INSERT INTO daily_sales SELECT * FROM x",
		"DESCRIBE CREATE TABLE t AS SELECT 1",
	} {
		_, err := b.engine.Query(t.Context(), q)
		require.Error(t, err, q)
	}
	for _, q := range []string{
		"SELECT * FROM read_csv('" + filepath.Join(state, "orders.csv") + "')",
		"SELECT * FROM read_csv('" + marts + "/../state/orders.csv')",
		"SELECT * FROM read_csv('" + marts + "/daily_sales/link/orders.csv')",
		"SELECT * FROM '" + filepath.Join(state, "orders.csv") + "'",
		"SELECT * FROM read_text('" + marts + "/../secret.csv')",
		"SELECT * FROM read_blob('/etc/hostname')",
		"SELECT * FROM read_parquet('" + marts + "/../**/*.parquet')",
		"SELECT * FROM read_json_auto('/etc/os-release')",
		"SELECT * FROM glob('" + marts + "/../*')",
		"DESCRIBE SELECT * FROM read_csv('" + filepath.Join(state, "orders.csv") + "')",
		"SUMMARIZE SELECT * FROM read_csv('" + filepath.Join(state, "orders.csv") + "')",
		"SELECT * FROM sniff_csv('" + filepath.Join(state, "orders.csv") + "')",
		"SELECT getenv('HOME')",
		"SELECT * FROM duckdb_secrets()",
	} {
		res, err := b.engine.Query(t.Context(), q)
		if err == nil {
			require.NotContains(t, resultString(t, res), "42", q)
			require.Failf(t, "a query outside the marts ran", "%s", q)
		}
	}
	// The marts themselves stay readable.
	require.Contains(t, b.run(t, "SELECT count(*) AS n FROM read_parquet('"+marts+"/daily_sales/*/*.parquet')", query.FormatCSV), "3")
}

func resultString(t *testing.T, res *query.Result) string {
	t.Helper()
	var buf strings.Builder
	require.NoError(t, res.Write(&buf, query.FormatCSV))
	return buf.String()
}

// TestLockDownReachesOnlyMartsAndLake: DuckDB's readable directories are
// exactly the real paths of marts/ and lake/; it has no temp directory
// (by default ".tmp" in the working directory, which DuckDB would add).
func TestLockDownReachesOnlyMartsAndLake(t *testing.T) {
	t.Parallel()
	b := setup(t)
	real, err := filepath.EvalSymlinks(b.dataDir)
	require.NoError(t, err)
	got := b.run(t, `SELECT current_setting('temp_directory') AS temp, list_sort(current_setting('allowed_directories')) AS dirs,
		current_setting('enable_external_access') AS ext, current_setting('lock_configuration') AS locked`, query.FormatCSV)
	want := fmt.Sprintf("temp,dirs,ext,locked\n,\"[\"\"%s/\"\",\"\"%s/\"\"]\",false,true\n", filepath.Join(real, "lake"), filepath.Join(real, "marts"))
	require.Equal(t, want, got)

	_, err = b.engine.Query(t.Context(), "SET temp_directory = '/tmp'")
	require.ErrorIs(t, err, query.ErrNotAllowed)
}

// TestQueryRefusesSymlinksOut: DuckDB resolves a path before it checks it,
// so links under the marts that point outside are refused when read, and
// a link inside the marts still works.
func TestQueryRefusesSymlinksOut(t *testing.T) {
	t.Parallel()
	b := setup(t)
	marts := filepath.Join(b.dataDir, "marts")
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("s\nsecret-value\n"), 0o600))
	require.NoError(t, os.Symlink(outside, filepath.Join(marts, "daily_sales", "out")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.csv"), filepath.Join(marts, "leak.csv")))
	require.NoError(t, os.Symlink("../../../"+filepath.Base(outside), filepath.Join(marts, "customer_ltv", "rel")))
	require.NoError(t, os.Symlink(filepath.Join(marts, "customer_ltv"), filepath.Join(marts, "inside")))

	for _, q := range []string{
		"SELECT * FROM read_csv('" + marts + "/daily_sales/out/secret.csv')",
		"SELECT * FROM read_csv('" + marts + "/leak.csv')",
		"SELECT * FROM read_text('" + marts + "/customer_ltv/rel/secret.csv')",
		"SELECT * FROM read_text('" + marts + "/*.csv')",
		"SELECT * FROM glob('" + marts + "/daily_sales/out/*')",
	} {
		res, err := b.engine.Query(t.Context(), q)
		require.ErrorIs(t, err, query.ErrOutside, "%s ran: %v", q, res)
		require.ErrorContains(t, err, "Cannot access")
	}
	// The view's ** glob does not follow the links, so the mart still reads.
	require.Equal(t, "n\n3\n", b.run(t, "SELECT count(*) AS n FROM daily_sales", query.FormatCSV))
	require.Equal(t, "n\n2\n", b.run(t, "SELECT count(*) AS n FROM read_parquet('"+marts+"/inside/*.parquet')", query.FormatCSV))
}

// TestOpenRefusesDataDirsThatLinkOut: a marts or lake directory linking
// to a directory that holds the data dir would open the state; Open
// refuses it. A mart directory that links out is no view and cannot be
// read; a marts directory that is a link to another disk is fine.
func TestOpenRefusesDataDirsThatLinkOut(t *testing.T) {
	t.Parallel()
	t.Run("mart directory links out", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		outside := t.TempDir()
		require.NoError(t, marts.WriteManifest(marts.Manifest{Name: "evil", Kind: marts.KindMart, Dir: outside, Columns: []marts.Column{{Name: "x", Type: "BIGINT"}}}))
		require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.csv"), []byte("s\nsecret-value\n"), 0o600))
		require.NoError(t, os.Symlink(outside, marts.MartPath(b.dataDir, "evil")))
		e, err := query.Open(t.Context(), query.Config{DataDir: b.dataDir})
		require.NoError(t, err)
		defer e.Close()
		for _, tb := range e.Tables() {
			require.NotEqual(t, "evil", tb.Name)
		}
		_, err = e.Query(t.Context(), "SELECT * FROM read_csv('"+marts.MartPath(b.dataDir, "evil")+"/secret.csv')")
		require.ErrorIs(t, err, query.ErrOutside)
	})
	t.Run("marts links to the data dir", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.Symlink(".", filepath.Join(dir, "marts")))
		_, err := query.Open(t.Context(), query.Config{DataDir: dir})
		require.ErrorIs(t, err, query.ErrUnsafeDataDir)
		require.ErrorContains(t, err, "holds the data dir itself")
	})
	t.Run("lake links to the root", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.Symlink("/", filepath.Join(dir, "lake")))
		_, err := query.Open(t.Context(), query.Config{DataDir: dir})
		require.ErrorIs(t, err, query.ErrUnsafeDataDir)
	})
	t.Run("marts on another disk", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		moved := filepath.Join(t.TempDir(), "marts")
		require.NoError(t, os.Rename(filepath.Join(b.dataDir, "marts"), moved))
		require.NoError(t, os.Symlink(moved, filepath.Join(b.dataDir, "marts")))
		e, err := query.Open(t.Context(), query.Config{DataDir: b.dataDir})
		require.NoError(t, err)
		defer e.Close()
		res, err := e.Query(t.Context(), "SELECT count(*) AS n FROM daily_sales")
		require.NoError(t, err)
		require.Equal(t, "n\n3\n", resultString(t, res))
		_, err = e.Query(t.Context(), "SELECT * FROM read_csv('"+filepath.Join(b.dataDir, "secret.csv")+"')")
		require.ErrorIs(t, err, query.ErrOutside)
	})
}

// TestQueryOutOfMemorySaysSo: without spilling, a query past the memory
// limit fails with an error naming the limit, not DuckDB's advice to set a
// temp directory.
func TestQueryOutOfMemorySaysSo(t *testing.T) {
	t.Parallel()
	b := setup(t)
	e, err := query.Open(t.Context(), query.Config{DataDir: b.dataDir, MemoryLimit: "64MB"})
	require.NoError(t, err)
	defer e.Close()
	_, err = e.Query(t.Context(), "SELECT count(*) FROM (SELECT i, count(*) FROM range(100000000) t(i) GROUP BY i)")
	require.ErrorIs(t, err, query.ErrOutOfMemory)
	require.ErrorContains(t, err, "memory limit 64MB (the query engine does not spill to disk; raise --memory-limit")
	require.NotContains(t, err.Error(), "temp_directory")
}
