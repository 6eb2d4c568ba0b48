package marts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// A dataset whose clean stage is partitioned by key (docs/scale-out.md)
// has one aggregator state per partition; each writes its records to the
// lake, and the marts are built from the union of the lake's partition
// files.

// PartitionStateFile is the DuckDB state of partition p of dataset.
func PartitionStateFile(dataDir, dataset string, p int) string {
	return filepath.Join(dataDir, StateDir, dataset+".p"+strconv.Itoa(p)+".duckdb")
}

// MartBuilderStateFile is the DuckDB state of dataset's mart builder: the
// lake's rows and which lake files they came from, so a build reads only
// the files that are new since the last one.
func MartBuilderStateFile(dataDir, dataset string) string {
	return filepath.Join(dataDir, StateDir, dataset+".marts.duckdb")
}

// PartitionProgressFile is where partition p's aggregator records its
// progress. Its name does not end in .progress.json: ReadProgress lists
// datasets, and the mart builder writes the dataset's progress.
func PartitionProgressFile(dataDir, dataset string, p int) string {
	return filepath.Join(dataDir, StateDir, dataset+".p"+strconv.Itoa(p)+".partition.json")
}

// LakeFilePrefix starts the names of partition p's lake files, so that
// partitions never write the same file.
func LakeFilePrefix(p int) string { return "data-p" + strconv.Itoa(p) + "-" }

// PartitionProgress is what one partition's aggregator has committed to
// its state and written to the lake.
type PartitionProgress struct {
	Dataset   string `json:"dataset"`
	Partition int    `json:"partition"`
	// CommittedSeq is the highest stream sequence committed to the state.
	CommittedSeq uint64 `json:"committed_seq"`
	Records      int64  `json:"records"`
	Duplicates   int64  `json:"duplicates"`
	// LakeSeq is the highest sequence whose records are in the lake: every
	// record committed up to it is in a lake file.
	LakeSeq   uint64    `json:"lake_seq"`
	UpdatedAt time.Time `json:"updated_at"`
}

// WritePartitionProgress records p for the mart builder.
func WritePartitionProgress(dataDir string, p PartitionProgress) error {
	return writeMirror(PartitionProgressFile(dataDir, p.Dataset, p.Partition), p)
}

// ReadPartitionProgress reads the progress of partitions 0..n-1 of
// dataset; a partition that has not written one yet has zero progress.
func ReadPartitionProgress(dataDir, dataset string, n int) ([]PartitionProgress, error) {
	out := make([]PartitionProgress, n)
	for p := range n {
		out[p] = PartitionProgress{Dataset: dataset, Partition: p}
		path := PartitionProgressFile(dataDir, dataset, p)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &out[p]); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadManifest, path, err)
		}
	}
	return out, nil
}

// FoldedSeq is the sequence up to which the lake holds every committed
// record of the partitions: the highest committed sequence when every
// partition's lake has caught up with its state, else the lowest lake
// sequence of a partition that has not. Marts built from the lake carry
// it as their LastSeq.
func FoldedSeq(ps []PartitionProgress) (folded, committed uint64) {
	behind := false
	for _, p := range ps {
		committed = max(committed, p.CommittedSeq)
		if p.LakeSeq < p.CommittedSeq {
			if !behind || p.LakeSeq < folded {
				folded = p.LakeSeq
			}
			behind = true
		}
	}
	if !behind {
		folded = committed
	}
	return folded, committed
}
