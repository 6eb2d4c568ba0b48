package aggregate

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
)

func lakeFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(marts.LakePath(dataDir, "orders"), "*", "*.parquet"))
	require.NoError(t, err)
	return files
}

// TestLakeCompaction makes many small lake files (a flush per few
// records), then lets the builder checkpoint and compact: the month's
// files become one, the lake's rows and the marts stay exact, and a new
// builder (from the checkpoint and the log) agrees.
func TestLakeCompaction(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ms := allKindsOfMarts()
	bb := newBuilderBundle(t, dir, ms)
	distinct, stream := genOrders(9, 400)
	for i := 0; i < len(stream); i += 20 {
		bb.feed(stream[i:min(i+20, len(stream))])
		require.NoError(t, bb.in.Flush(t.Context()))
	}
	bb.build()
	before := len(lakeFiles(t, dir))
	require.GreaterOrEqual(t, before, compactFiles, "a file per flush and month")
	bb.b.buildMu.Lock()
	require.NoError(t, bb.b.checkpoint(t.Context()))
	require.NoError(t, bb.b.compact(t.Context()))
	bb.b.buildMu.Unlock()
	after := len(lakeFiles(t, dir))
	require.Less(t, after, before)
	require.Equal(t, map[string]int{}, dupKeys(lakeRows(t, dir)), "no record twice")
	require.Len(t, lakeRows(t, dir), len(distinct))
	bb.feed(stream[:50]) // redelivered duplicates change nothing
	bb.stop()
	requireMartsMatchBatch(t, dir, ms, distinct)

	// A new builder recomputes a changed mart from the compacted lake.
	changed := append([]Mart(nil), ms...)
	changed[3].SQL = `SELECT CAST(ts AS DATE) AS day, count(DISTINCT country) AS customers FROM orders GROUP BY 1`
	bb = newBuilderBundle(t, dir, changed)
	bb.stop()
	requireMartsMatchBatch(t, dir, changed, distinct)
}

func dupKeys(rows map[string]int) map[string]int {
	out := map[string]int{}
	for k, n := range rows {
		if n != 1 {
			out[k] = n
		}
	}
	return out
}

// TestLakeCompactionCrash stops a compaction after its file is in place
// but before its log entry, and after the entry but before the old files
// are deleted: the next builder removes what is extra either way.
func TestLakeCompactionCrash(t *testing.T) {
	t.Parallel()
	for _, committed := range []bool{false, true} {
		dir := t.TempDir()
		bb := newBuilderBundle(t, dir, shopMarts())
		distinct, stream := genOrders(10, 400)
		for i := 0; i < len(stream); i += 20 {
			bb.feed(stream[i:min(i+20, len(stream))])
			require.NoError(t, bb.in.Flush(t.Context()))
		}
		bb.build()
		saved := map[string][]byte{}
		for _, f := range lakeFiles(t, dir) {
			saved[f] = mustRead(t, f)
		}
		bb.b.buildMu.Lock()
		require.NoError(t, bb.b.checkpoint(t.Context()))
		require.NoError(t, bb.b.compact(t.Context()))
		bb.b.buildMu.Unlock()
		// Undo what the compaction did after the point of the crash.
		entries, err := readLakeEntries(dir, "orders", map[string]uint64{})
		require.NoError(t, err)
		var c lakeEntry
		for _, e := range entries {
			if len(e.Removed) > 0 {
				c = e
			}
		}
		require.NotEmpty(t, c.Removed)
		lake := marts.LakePath(dir, "orders")
		for _, f := range c.Removed {
			path := filepath.Join(lake, f)
			require.NoError(t, os.WriteFile(path, saved[path], 0o644))
		}
		note := compaction{Owner: c.Owner, N: c.N, File: c.Files[0].Path}
		writeJSON(t, compactionFile(dir, "orders"), note)
		if !committed {
			require.NoError(t, os.Remove(lakeEntryPath(dir, "orders", c.Owner, c.N)))
		}
		bb.crashBuilder()
		require.NoError(t, bb.in.Stop(context.Background()))

		bb = newBuilderBundle(t, dir, shopMarts())
		bb.stop()
		rows := lakeRows(t, dir)
		require.Empty(t, dupKeys(rows), "committed=%v", committed)
		require.Len(t, rows, len(distinct))
		requireMartsMatchBatch(t, dir, shopMarts(), distinct)
	}
}
