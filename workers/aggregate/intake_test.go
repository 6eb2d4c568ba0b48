package aggregate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

var errCrash = errors.New("test: crashed here")

// intakeBundle is an intake of the shop dataset on its own engine, fed
// directly, without a builder.
type intakeBundle struct {
	t       *testing.T
	dataDir string
	eng     *Engine
	in      *Intake
}

func newIntake(t *testing.T, dataDir string, parts ...int) *intakeBundle {
	t.Helper()
	eng, err := OpenEngine(EngineConfig{MemoryLimit: "128MB", Threads: 1, TempDir: filepath.Join(t.TempDir(), "duck")})
	require.NoError(t, err)
	t.Cleanup(func() { _ = eng.Close() })
	in, err := NewIntake(IntakeConfig{Engine: eng, DataDir: dataDir, Dataset: shopDataset(), FlushInterval: time.Hour, Logger: testLog(t)})
	require.NoError(t, err)
	for _, p := range parts {
		require.NoError(t, in.OpenPartition(t.Context(), p))
	}
	return &intakeBundle{t: t, dataDir: dataDir, eng: eng, in: in}
}

func (b *intakeBundle) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(b.t, b.in.Stop(ctx))
}

func (b *intakeBundle) commit(p int, recs ...workers.Record) []workers.Reject {
	b.t.Helper()
	rejects, err := batchHandler{in: b.in, p: p}.HandleBatch(b.t.Context(), recs)
	require.NoError(b.t, err)
	return rejects
}

func rec(data string, seq uint64, idx int) workers.Record {
	return workers.Record{Data: []byte(data), Seq: seq, Index: idx, Published: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
}

func orderJSON(id, day string) string {
	return `{"order_id":"` + id + `","customer_id":"c-1","amount":10,"currency":"USD","amount_usd":10,"country":"US","ts":"` + day + `T10:00:00Z"}`
}

// lakeRows counts the lake's rows per order id, through DuckDB.
func lakeRows(t *testing.T, dataDir string) map[string]int {
	t.Helper()
	db, err := duckdb.Open("", nil)
	require.NoError(t, err)
	defer db.Close()
	out := map[string]int{}
	glob := filepath.Join(marts.LakePath(dataDir, "orders"), "*", "*.parquet")
	if files, _ := filepath.Glob(glob); len(files) == 0 {
		return out
	}
	rows, err := db.Query("SELECT order_id, count(*) FROM read_parquet(" + duckdb.Literal(glob) + ") GROUP BY ALL")
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var id string
		var n int
		require.NoError(t, rows.Scan(&id, &n))
		out[id] = n
	}
	require.NoError(t, rows.Err())
	return out
}

func TestIntakeRedeliveryIsNotADuplicate(t *testing.T) {
	t.Parallel()
	b := newIntake(t, t.TempDir(), 0)
	defer b.stop()
	b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0), rec(orderJSON("b", "2026-10-01"), 2, 0))
	// The same messages again (a crash between commit and ack): nothing new.
	b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0), rec(orderJSON("b", "2026-10-01"), 2, 0))
	st := b.in.Stats()
	require.Equal(t, int64(2), st.Records)
	require.Zero(t, st.Duplicates)
	// A real duplicate (another message, same key) counts, once, even when
	// its message comes again; two copies in one bulk message count too.
	b.commit(0, rec(orderJSON("a", "2026-10-02"), 3, 0))
	b.commit(0, rec(orderJSON("a", "2026-10-02"), 3, 0))
	b.commit(0, rec(orderJSON("c", "2026-10-02"), 4, 0), rec(orderJSON("c", "2026-10-02"), 4, 1), rec(orderJSON("c", "2026-10-02"), 4, 1))
	st = b.in.Stats()
	require.Equal(t, int64(3), st.Records)
	require.Equal(t, int64(2), st.Duplicates)
	require.NoError(t, b.in.Flush(t.Context()))
	require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, lakeRows(t, b.dataDir))
}

func TestIntakeRejectsBadRecords(t *testing.T) {
	t.Parallel()
	b := newIntake(t, t.TempDir(), 0)
	defer b.stop()
	rejects := b.commit(0,
		rec(`not json`, 1, 0),
		rec(`{"customer_id":"c-1"}`, 2, 0),
		rec(`{"order_id":"","customer_id":"c-1"}`, 3, 0),
		rec(`{"order_id":"x","amount":"lots"}`, 4, 0),
		rec(`{"order_id":"y","ts":"yesterday"}`, 5, 0),
		rec(orderJSON("ok", "2026-10-01"), 6, 0),
	)
	require.Len(t, rejects, 5)
	for i, want := range []string{"not a JSON object", `no key field "order_id"`, `empty key field "order_id"`, "field amount (DOUBLE)", "field ts (TIMESTAMPTZ)"} {
		require.Equal(t, i, rejects[i].Index)
		require.ErrorContains(t, rejects[i].Err, want)
	}
	require.Equal(t, int64(1), b.in.Stats().Records)
}

// TestIntakeSurvivesCrashes kills the intake at each point of a lake flush
// that matters, restarts it on the same data dir, and requires the lake
// to hold every committed record exactly once and the keys to be known.
func TestIntakeSurvivesCrashes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		hooks func() intakeHooks
	}{
		{"before any flush", func() intakeHooks { return intakeHooks{} }},
		{"files written, entry not", func() intakeHooks { return intakeHooks{beforeEntryFunc: func() error { return errCrash }} }},
		{"entry written, not noted", func() intakeHooks { return intakeHooks{afterEntryFunc: func() error { return errCrash }} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			b := newIntake(t, dir, 0, 3)
			b.in.hooks = tc.hooks()
			b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0), rec(orderJSON("b", "2026-10-02"), 2, 0))
			b.commit(3, rec(orderJSON("c", "2026-10-01"), 3, 0))
			if tc.hooks().beforeEntryFunc != nil || tc.hooks().afterEntryFunc != nil {
				require.ErrorIs(t, b.in.Flush(t.Context()), errCrash)
			}
			b.commit(0, rec(orderJSON("d", "2026-10-03"), 4, 0), rec(orderJSON("b", "2026-10-09"), 9, 0)) // b again: a duplicate
			b.in.crash()

			// A new run (another owner) takes over both partitions.
			b2 := newIntake(t, dir, 0, 3)
			defer b2.stop()
			st := b2.in.Stats()
			require.Equal(t, int64(4), st.Records, "keys recovered")
			require.Equal(t, int64(1), st.Duplicates, "duplicates recovered")
			// Redeliveries of everything: nothing new, no duplicate counted
			// again.
			b2.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0), rec(orderJSON("b", "2026-10-02"), 2, 0), rec(orderJSON("d", "2026-10-03"), 4, 0),
				rec(orderJSON("b", "2026-10-09"), 9, 0))
			b2.commit(3, rec(orderJSON("c", "2026-10-01"), 3, 0))
			// A duplicate of a key committed before the crash counts.
			b2.commit(0, rec(orderJSON("a", "2026-10-05"), 5, 0))
			st = b2.in.Stats()
			require.Equal(t, int64(4), st.Records)
			require.Equal(t, int64(2), st.Duplicates)
			require.NoError(t, b2.in.Flush(t.Context()))
			require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1, "d": 1}, lakeRows(t, dir))
			// The journals are gone once the lake holds them.
			for _, p := range []int{0, 3} {
				pdir := marts.PartitionStateDir(dir, "orders", p)
				segs, err := segments(pdir)
				require.NoError(t, err)
				for _, s := range segs {
					fi, err := os.Stat(segmentPath(pdir, s))
					require.NoError(t, err)
					require.Zero(t, fi.Size(), "segment %d of partition %d", s, p)
				}
			}
		})
	}
}

func TestIntakeCutsATornJournalTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := newIntake(t, dir, 0)
	b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0))
	b.in.crash()
	// A crash mid-write: the next batch's keys line is in, its record line
	// half written.
	pdir := marts.PartitionStateDir(dir, "orders", 0)
	segs, err := segments(pdir)
	require.NoError(t, err)
	f, err := os.OpenFile(segmentPath(pdir, segs[len(segs)-1]), os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	torn := appendKeysLines(nil, []journalEntry{{keyEntry: keyEntry{h: hashKey([]byte("b")), pos: position{seq: 2}}}})
	_, err = f.Write(append(torn, `{"_jf_at":1,"order_id":"b","cust`...))
	require.NoError(t, err)
	require.NoError(t, f.Close())

	b2 := newIntake(t, dir, 0)
	defer b2.stop()
	require.Equal(t, int64(1), b2.in.Stats().Records)
	b2.commit(0, rec(orderJSON("b", "2026-10-01"), 2, 0)) // redelivered: it was never acked
	require.NoError(t, b2.in.Flush(t.Context()))
	require.Equal(t, map[string]int{"a": 1, "b": 1}, lakeRows(t, dir))
}

func TestPartitionHasOneOwner(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := newIntake(t, dir, 2)
	defer b.stop()
	other := newIntake(t, dir)
	err := other.in.OpenPartition(t.Context(), 2)
	require.ErrorIs(t, err, ErrLocked)
	b.commit(2, rec(orderJSON("a", "2026-10-01"), 1, 0))
	// Handed over: the next owner finds the record in the lake and its key.
	require.NoError(t, b.in.ClosePartition(t.Context(), 2))
	require.NoError(t, other.in.OpenPartition(t.Context(), 2))
	defer other.stop()
	require.Equal(t, map[string]int{"a": 1}, lakeRows(t, dir))
	other.commit(2, rec(orderJSON("a", "2026-10-02"), 9, 0))
	require.Equal(t, int64(1), other.in.Stats().Duplicates)
}

func TestIntakeRefusesAnOldDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "state"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "state", "orders.p3.duckdb"), []byte("x"), 0o644))
	b := newIntake(t, dir)
	err := b.in.Start(t.Context())
	require.ErrorIs(t, err, ErrOldState)
	require.ErrorContains(t, err, "orders.p3.duckdb")
	require.ErrorContains(t, err, "docs/scale-out.md")
}

// TestIntakeFlushThatCommittedIsNotRedone: a lake flush commits (its log
// entry is written) and then keeping the keys fails (a full disk): the
// partition must still move past the flushed segments, or the next flush
// would put their records in the lake again.
func TestIntakeFlushThatCommittedIsNotRedone(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := newIntake(t, dir, 0)
	b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0), rec(orderJSON("b", "2026-10-01"), 2, 0))
	b.in.mu.Lock()
	pt := b.in.parts[0]
	b.in.mu.Unlock()
	require.NoError(t, pt.keyFile.f.Close()) // every append to keys.bin fails from now on
	require.Error(t, b.in.Flush(t.Context()))
	b.commit(0, rec(orderJSON("c", "2026-10-01"), 3, 0))
	_ = b.in.Flush(t.Context()) // keeps failing to keep keys; must not flush a and b again
	require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, lakeRows(t, dir))
	b.in.crash()

	b2 := newIntake(t, dir, 0)
	defer b2.stop()
	require.Equal(t, int64(3), b2.in.Stats().Records, "keys of the flushed segments read back from them")
	b2.commit(0, rec(orderJSON("a", "2026-10-02"), 9, 0))
	require.Equal(t, int64(1), b2.in.Stats().Duplicates)
	require.NoError(t, b2.in.Flush(t.Context()))
	require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, lakeRows(t, dir))
}

// The progress mirror is rewritten at most once a second; what a reader
// sees as committed must still include every acked batch, so that an
// owner killed between two mirror writes does not leave its last commits
// looking folded into the marts (marts.FoldedSeq over stale progress).
func TestProgressShowsEveryCommitBeforeItsAck(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	b := newIntake(t, dataDir, 0)
	defer b.stop()
	b.commit(0, rec(orderJSON("a", "2026-10-01"), 1, 0))
	for seq := uint64(2); seq <= 5; seq++ {
		b.commit(0, rec(orderJSON(fmt.Sprint("k", seq), "2026-10-01"), seq, 0))
		p, err := marts.ReadOnePartitionProgress(dataDir, "orders", 0)
		require.NoError(t, err)
		require.Equal(t, seq, p.CommittedSeq, "committed as read by the builder and status")
		folded, _ := marts.FoldedSeq([]marts.PartitionProgress{p}, map[int]uint64{0: 1})
		require.Equal(t, uint64(1), folded, "records past the last lake flush are not folded")
	}
}
