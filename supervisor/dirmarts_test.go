package supervisor_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/supervisor"
)

// A partition that committed since the mart builder last looked (here
// partition 1, committed up to 90 but folded up to 40) holds the marts
// back even though the builder's own mirror and the mart's last_seq
// already reach the highest committed sequence, which another partition
// set: status --wait-idle must not call that idle.
func TestDirMartsCountsAPartitionCommittedSinceTheBuildersLastLook(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, marts.WriteManifest(marts.Manifest{
		Name: "daily", Kind: marts.KindMart, Dataset: "orders", Rows: 3, Partitions: 1,
		UpdatedAt: time.Now(), LastSeq: 100, Dir: marts.MartPath(dir, "daily"),
	}))
	progress := func(p int, committed uint64) {
		require.NoError(t, marts.WritePartitionProgress(dir, marts.PartitionProgress{
			Dataset: "orders", Partition: p, CommittedSeq: committed, LakeSeq: committed,
		}, false))
	}
	progress(0, 100)
	progress(1, 90)
	unflushed := func(folded map[string]uint64) int64 {
		require.NoError(t, marts.WriteProgress(dir, marts.Progress{Dataset: "orders", CommittedSeq: 100, Folded: folded}))
		ms, err := supervisor.DirMarts(dir)(t.Context())
		require.NoError(t, err)
		require.Len(t, ms, 1)
		return ms[0].Unflushed
	}
	require.Equal(t, int64(60), unflushed(map[string]uint64{"0": 100, "1": 40}), "partition 1 is folded up to 40 only")
	require.Zero(t, unflushed(map[string]uint64{"0": 100, "1": 90}), "every partition folded")
	require.Equal(t, int64(100), unflushed(map[string]uint64{"0": 100}), "partition 1 never folded")
}
