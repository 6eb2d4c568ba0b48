package supervisor

import (
	"context"

	"github.com/jetfleet/jetfleet/marts"
)

// DirMarts reports the marts and lakes whose manifests are under dataDir,
// with what their dataset's aggregator committed but not yet flushed.
func DirMarts(dataDir string) MartsFunc {
	return func(context.Context) ([]MartStatus, error) {
		manifests, err := marts.ReadManifests(dataDir)
		if err != nil {
			return nil, err
		}
		progress, err := marts.ReadProgress(dataDir)
		if err != nil {
			return nil, err
		}
		// committed is what each dataset's partitions committed, and folded
		// the sequence up to which the marts hold all of it, from the
		// partitions' own progress (rewritten with every commit) against
		// what the builder folded in: the builder's mirror alone lags a
		// partition that committed since its last look.
		committed, folded := map[string]uint64{}, map[string]uint64{}
		for _, p := range progress {
			committed[p.Dataset], folded[p.Dataset] = p.CommittedSeq, p.CommittedSeq
			if p.Folded == nil {
				continue
			}
			parts, err := marts.ReadAllPartitionProgress(dataDir, p.Dataset)
			if err != nil {
				return nil, err
			}
			f, c := marts.FoldedSeq(parts, marts.FoldedByPartition(p.Folded))
			committed[p.Dataset], folded[p.Dataset] = max(c, p.CommittedSeq), f
		}
		var out []MartStatus
		for _, m := range manifests {
			name := m.Name
			if m.Kind == marts.KindLake {
				name = "lake:" + m.Dataset // the raw clean records, also flushed by the aggregator
			}
			st := MartStatus{
				Name: name, Dataset: m.Dataset, Rows: m.Rows, Partitions: m.Partitions, UpdatedAt: m.UpdatedAt, LastSeq: m.LastSeq,
				Rebuilding: m.Rebuilding, RebuiltAt: m.RebuiltAt,
			}
			if c, upTo := committed[m.Dataset], min(m.LastSeq, folded[m.Dataset]); c > upTo {
				st.Unflushed = int64(c - upTo) // sequences: an upper bound on records
			}
			out = append(out, st)
		}
		return out, nil
	}
}
