package marts_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
)

func TestFoldedSeq(t *testing.T) {
	t.Parallel()
	pp := func(committed, lake uint64) marts.PartitionProgress {
		return marts.PartitionProgress{CommittedSeq: committed, LakeSeq: lake}
	}
	tests := []struct {
		name              string
		ps                []marts.PartitionProgress
		folded, committed uint64
	}{
		{"nothing yet", []marts.PartitionProgress{pp(0, 0), pp(0, 0)}, 0, 0},
		{"all caught up", []marts.PartitionProgress{pp(90, 90), pp(100, 100), pp(0, 0)}, 100, 100},
		{"one behind", []marts.PartitionProgress{pp(90, 80), pp(100, 100)}, 80, 100},
		{"two behind", []marts.PartitionProgress{pp(90, 85), pp(100, 70), pp(95, 95)}, 70, 100},
	}
	for _, tt := range tests {
		folded, committed := marts.FoldedSeq(tt.ps)
		require.Equal(t, tt.folded, folded, tt.name)
		require.Equal(t, tt.committed, committed, tt.name)
	}
}

func TestPartitionProgressRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, marts.WritePartitionProgress(dir, marts.PartitionProgress{Dataset: "orders", Partition: 2, CommittedSeq: 7, LakeSeq: 5, Records: 3}))
	ps, err := marts.ReadPartitionProgress(dir, "orders", 4)
	require.NoError(t, err)
	require.Len(t, ps, 4)
	require.Equal(t, uint64(7), ps[2].CommittedSeq)
	require.Equal(t, uint64(5), ps[2].LakeSeq)
	require.Equal(t, 3, ps[3].Partition, "a partition without a file has zero progress")
	require.Zero(t, ps[3].CommittedSeq)
	progress, err := marts.ReadProgress(dir)
	require.NoError(t, err)
	require.Empty(t, progress, "partition files are not dataset progress files")
}
