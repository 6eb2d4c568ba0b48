package aggregate

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// batchOf makes a journal batch: n new records (each with a line) and
// dups duplicates.
func batchOf(seq uint64, n, dups int) ([]journalEntry, []byte) {
	var entries []journalEntry
	var lines []byte
	for i := range n + dups {
		e := journalEntry{keyEntry: keyEntry{h: hashKey([]byte(strconv.FormatUint(seq, 10) + "/" + strconv.Itoa(i))), pos: position{seq: seq, idx: uint32(i)}}}
		if i >= n {
			e.dup = true
		} else {
			lines = appendRecordPrefix(lines, int64(i))
			lines = append(lines, `,"order_id":"x"}`+"\n"...)
		}
		entries = append(entries, e)
	}
	return entries, lines
}

// TestJournalReadsBackWhatItWrote: batches of records and duplicates, one
// larger than a keys line holds, read back in order; then each way a
// crash can cut the last batch.
func TestJournalReadsBackWhatItWrote(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := openJournal(dir, 1, true)
	require.NoError(t, err)
	var want []journalEntry
	var lines int64
	for i, shape := range [][2]int{{3, 1}, {0, 2}, {keysPerLine + 5, 3}, {1, 0}} {
		e, l := batchOf(uint64(i+1), shape[0], shape[1])
		require.NoError(t, j.Append(e, l))
		want = append(want, e...)
		lines += int64(shape[0])
	}
	require.NoError(t, j.Close())
	whole, err := os.ReadFile(segmentPath(dir, 1))
	require.NoError(t, err)
	r, err := readSegment(dir, 1)
	require.NoError(t, err)
	require.Equal(t, want, r.entries)
	require.Equal(t, lines, r.lines)

	// The last batch cut at every byte: it disappears whole.
	last, lastLines := batchOf(9, 4, 2)
	tail := append(appendKeysLines(nil, last), lastLines...)
	for cut := 1; cut < len(tail); cut += 7 {
		require.NoError(t, os.WriteFile(segmentPath(dir, 1), append(append([]byte(nil), whole...), tail[:cut]...), 0o644))
		r, err := readSegment(dir, 1)
		require.NoError(t, err, "cut at %d", cut)
		require.Equal(t, want, r.entries, "cut at %d", cut)
		require.Equal(t, lines, r.lines, "cut at %d", cut)
		got, err := os.ReadFile(segmentPath(dir, 1))
		require.NoError(t, err)
		require.Equal(t, whole, got, "the torn batch is cut off (cut at %d)", cut)
	}

	// A record line without its keys is corruption, not a tear.
	require.NoError(t, os.WriteFile(segmentPath(dir, 1), append(append([]byte(nil), whole...), lastLines...), 0o644))
	_, err = readSegment(dir, 1)
	require.ErrorIs(t, err, errBadJournal)
}
