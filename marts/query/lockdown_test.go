package query_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
