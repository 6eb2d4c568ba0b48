package aggregate

import (
	"time"

	"github.com/jetfleet/jetfleet/marts"
)

// Partition makes an [Aggregator] the owner of one key partition of its
// dataset. Its state is state/<dataset>.p<index>.duckdb, its lake files
// are named data-p<index>-*.parquet, and instead of manifests it writes
// state/<dataset>.p<index>.partition.json, which a [MartBuilder] reads.
type Partition struct {
	Index int
	// LakeFlushedFunc, if set, is called after the partition's lake got
	// new records (and once at start): the mart builder's cue. It must
	// not block.
	LakeFlushedFunc func()
}

func (a *Aggregator) stateFile() string {
	if a.cfg.builder {
		return marts.MartBuilderStateFile(a.cfg.DataDir, a.cfg.Dataset.Name)
	}
	if p := a.cfg.Partition; p != nil {
		return marts.PartitionStateFile(a.cfg.DataDir, a.cfg.Dataset.Name, p.Index)
	}
	return marts.StateFile(a.cfg.DataDir, a.cfg.Dataset.Name)
}

func (a *Aggregator) lakeFilePrefix() string {
	if p := a.cfg.Partition; p != nil {
		return marts.LakeFilePrefix(p.Index)
	}
	return "data-"
}

// tempPrefix starts the names of the temp files o's flushes leave behind
// after a crash; a partition's lake shares its directory with the other
// partitions, so only its own are its to remove.
func (a *Aggregator) tempPrefix(o *output) string {
	if a.cfg.Partition != nil && o.kind == marts.KindLake {
		return marts.TempPrefix + a.lakeFilePrefix()
	}
	return marts.TempPrefix
}

// writeManifest publishes o's flushed state: its manifest, or for a
// partition (which has only its lake) its progress file and the builder's
// cue.
func (a *Aggregator) writeManifest(o *output, rows int64, partitions int, updated time.Time) error {
	p := a.cfg.Partition
	if p == nil {
		return marts.WriteManifest(o.manifest(a.cfg.Dataset.Name, rows, partitions, updated))
	}
	err := a.writePartitionProgress(func(pp *marts.PartitionProgress) { pp.LakeSeq = o.lastSeq })
	if p.LakeFlushedFunc != nil {
		p.LakeFlushedFunc()
	}
	return err
}

// writePartitionProgress applies set to the partition's progress and
// writes it; the ingest and flush sides each set their own fields.
func (a *Aggregator) writePartitionProgress(set func(*marts.PartitionProgress)) error {
	a.progMu.Lock()
	defer a.progMu.Unlock()
	a.prog.Dataset, a.prog.Partition = a.cfg.Dataset.Name, a.cfg.Partition.Index
	set(&a.prog)
	a.prog.UpdatedAt = time.Now().UTC()
	err := marts.WritePartitionProgress(a.cfg.DataDir, a.prog)
	if err != nil {
		a.log.Warn().Err(err).Msg("write partition progress file")
	}
	return err
}
