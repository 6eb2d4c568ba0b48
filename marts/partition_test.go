package marts_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
)

func TestFoldedSeq(t *testing.T) {
	t.Parallel()
	pp := func(p int, committed uint64) marts.PartitionProgress {
		return marts.PartitionProgress{Partition: p, CommittedSeq: committed}
	}
	tests := []struct {
		name             string
		ps               []marts.PartitionProgress
		folded           map[int]uint64
		marts, committed uint64
	}{
		{"nothing yet", []marts.PartitionProgress{pp(0, 0), pp(1, 0)}, nil, 0, 0},
		{"all caught up", []marts.PartitionProgress{pp(0, 90), pp(1, 100), pp(2, 0)}, map[int]uint64{0: 90, 1: 100}, 100, 100},
		{"one behind", []marts.PartitionProgress{pp(0, 90), pp(1, 100)}, map[int]uint64{0: 80, 1: 100}, 80, 100},
		{"two behind", []marts.PartitionProgress{pp(0, 90), pp(1, 100), pp(2, 95)}, map[int]uint64{0: 85, 1: 70, 2: 95}, 70, 100},
		{"never folded", []marts.PartitionProgress{pp(0, 90), pp(1, 100)}, map[int]uint64{1: 100}, 0, 100},
	}
	for _, tt := range tests {
		got, committed := marts.FoldedSeq(tt.ps, tt.folded)
		require.Equal(t, tt.marts, got, tt.name)
		require.Equal(t, tt.committed, committed, tt.name)
	}
}

func TestPartitionProgressRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := marts.PartitionProgress{
		Dataset: "orders", Partition: 2, CommittedSeq: 7, LakeSeq: 5, Records: 3, LakeSegment: 4,
		Flush: &marts.LakeFlush{Owner: "o1", N: 3, LastSegment: 6, Seq: 7},
	}
	require.NoError(t, marts.WritePartitionProgress(dir, want, true))
	ps, err := marts.ReadPartitionProgress(dir, "orders", 4)
	require.NoError(t, err)
	require.Len(t, ps, 4)
	require.Equal(t, want.Flush, ps[2].Flush)
	require.Equal(t, uint64(7), ps[2].CommittedSeq)
	require.Equal(t, uint64(4), ps[2].LakeSegment)
	require.Equal(t, 3, ps[3].Partition, "a partition without a file has zero progress")
	require.Zero(t, ps[3].CommittedSeq)
	progress, err := marts.ReadProgress(dir)
	require.NoError(t, err)
	require.Empty(t, progress, "partition files are not dataset progress files")
}
