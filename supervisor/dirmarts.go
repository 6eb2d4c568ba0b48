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
		committed := map[string]uint64{}
		for _, p := range progress {
			committed[p.Dataset] = p.CommittedSeq
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
			if c := committed[m.Dataset]; c > m.LastSeq {
				st.Unflushed = int64(c - m.LastSeq) // sequences: an upper bound on records
			}
			out = append(out, st)
		}
		return out, nil
	}
}
