package duckdb_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

func TestOpen(t *testing.T) {
	t.Parallel()
	db, err := duckdb.Open("", map[string]string{"threads": "1"})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, conn.Close()) })

	// A host in any zone: an instant just before midnight UTC is that
	// UTC day.
	var zone, day, threads string
	require.NoError(t, conn.QueryRowContext(t.Context(),
		`SELECT current_setting('TimeZone'), CAST(CAST(TIMESTAMPTZ '2026-10-01 23:30:00+00' AS DATE) AS VARCHAR), current_setting('threads')`).
		Scan(&zone, &day, &threads))
	require.Equal(t, "UTC", zone)
	require.Equal(t, "2026-10-01", day)
	require.Equal(t, "1", threads)

	isSelect, err := duckdb.IsSelect(conn, "FROM (SELECT 1)")
	require.NoError(t, err)
	require.True(t, isSelect)
	isSelect, err = duckdb.IsSelect(conn, "CREATE TABLE t (x INT)")
	require.NoError(t, err)
	require.False(t, isSelect)
	_, err = duckdb.IsSelect(conn, "SELECT 1; SELECT 2")
	require.ErrorIs(t, err, duckdb.ErrNotOneStatement)

	_, err = duckdb.Open("", map[string]string{"no_such_setting": "1"})
	require.Error(t, err)
	require.True(t, strings.HasPrefix(err.Error(), "duckdb setting no_such_setting=1: "), err.Error())
}
