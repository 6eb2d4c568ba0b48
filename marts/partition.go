package marts

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A dataset's clean stage is partitioned by key (docs/scale-out.md): each
// key partition has one owner at a time, which de-duplicates its keys,
// journals what it commits and flushes it to the lake. Its state lives in
// its own directory, so a partition moves between replicas that share the
// data dir.

// PartitionStateDir is partition p's directory under dataset's state.
func PartitionStateDir(dataDir, dataset string, p int) string {
	return filepath.Join(DatasetStateDir(dataDir, dataset), "p"+strconv.Itoa(p))
}

// PartitionProgressFile is partition p's progress and flush state.
func PartitionProgressFile(dataDir, dataset string, p int) string {
	return filepath.Join(PartitionStateDir(dataDir, dataset, p), "partition.json")
}

// PartitionProgress is what one partition committed and flushed to the
// lake. Its owner rewrites it after commits (a mirror, not synced) and at
// each step of a lake flush (synced: LakeSegment and Flush are what a
// restart resumes from).
type PartitionProgress struct {
	Dataset   string `json:"dataset"`
	Partition int    `json:"partition"`
	// CommittedSeq is the highest stream sequence committed.
	CommittedSeq uint64 `json:"committed_seq"`
	// Records are the distinct records committed; Duplicates were dropped.
	Records    int64 `json:"records"`
	Duplicates int64 `json:"duplicates"`
	// LakeSeq is the committed sequence the lake has caught up with: every
	// record committed up to it is in a lake file.
	LakeSeq uint64 `json:"lake_seq"`
	// LakeSegment is the last journal segment the lake holds.
	LakeSegment uint64 `json:"lake_segment"`
	// Flush is the lake flush under way, nil when none: a restart finds
	// out from the lake's log whether it committed.
	Flush     *LakeFlush `json:"flush,omitempty"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// LakeFlush names a lake flush: entry N of its owner's lake log, holding
// the partition's journal segments up to LastSegment.
type LakeFlush struct {
	Owner       string `json:"owner"`
	N           uint64 `json:"n"`
	LastSegment uint64 `json:"last_segment"`
	// Seq is the partition's committed sequence when the flush took its
	// segments: the LakeSeq it reaches.
	Seq uint64 `json:"seq"`
}

// WritePartitionProgress writes p atomically; durable fsyncs it.
func WritePartitionProgress(dataDir string, p PartitionProgress, durable bool) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return WriteFileAtomic(PartitionProgressFile(dataDir, p.Dataset, p.Partition), append(b, '\n'), durable)
}

// ReadPartitionProgress reads the progress of partitions 0..n-1 of
// dataset; a partition that has not written one yet has zero progress.
func ReadPartitionProgress(dataDir, dataset string, n int) ([]PartitionProgress, error) {
	out := make([]PartitionProgress, n)
	for p := range n {
		pp, err := ReadOnePartitionProgress(dataDir, dataset, p)
		if err != nil {
			return nil, err
		}
		out[p] = pp
	}
	return out, nil
}

// ReadOnePartitionProgress reads partition p's progress, zero if it has
// none yet. Its CommittedSeq is at least the partition's committed mark
// (CommittedMark): the mirror is rewritten at most once a second, and an
// owner killed in between must not leave its last commits looking folded.
func ReadOnePartitionProgress(dataDir, dataset string, p int) (PartitionProgress, error) {
	out := PartitionProgress{Dataset: dataset, Partition: p}
	path := PartitionProgressFile(dataDir, dataset, p)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%w: %s: %v", ErrBadManifest, path, err)
	}
	if seq, ok := ReadCommittedMark(CommittedMarkFile(dataDir, dataset, p)); ok {
		out.CommittedSeq = max(out.CommittedSeq, seq)
	}
	return out, nil
}

// CommittedMarkFile holds the highest sequence partition p has committed,
// rewritten in place by every commit before its acks.
func CommittedMarkFile(dataDir, dataset string, p int) string {
	return filepath.Join(PartitionStateDir(dataDir, dataset, p), "committed.mark")
}

// committedMarkSize is a mark's bytes: the sequence and its complement,
// so that a read racing a write is told from a mark.
const committedMarkSize = 16

// WriteCommittedMark writes seq into an open mark file at offset 0: one
// small write, no rename and no sync (the journal is the durable record;
// the mark only has to outlive the process).
func WriteCommittedMark(f *os.File, seq uint64) error {
	var b [committedMarkSize]byte
	binary.LittleEndian.PutUint64(b[:8], seq)
	binary.LittleEndian.PutUint64(b[8:], ^seq)
	_, err := f.WriteAt(b[:], 0)
	return err
}

// ReadCommittedMark reads a mark; ok is false when there is none or it
// was caught mid-write.
func ReadCommittedMark(path string) (seq uint64, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < committedMarkSize {
		return 0, false
	}
	seq = binary.LittleEndian.Uint64(b[:8])
	return seq, binary.LittleEndian.Uint64(b[8:16]) == ^seq
}

// FoldedSeq is the sequence up to which the marts hold every committed
// record of the partitions, given what each partition committed and what
// of it the marts have folded in (folded[p], by partition): the highest
// committed sequence when every partition is folded up to its committed
// one, else the lowest folded sequence of one that is not.
func FoldedSeq(ps []PartitionProgress, folded map[int]uint64) (marts, committed uint64) {
	behind := false
	for _, p := range ps {
		committed = max(committed, p.CommittedSeq)
		if f := folded[p.Partition]; f < p.CommittedSeq {
			if !behind || f < marts {
				marts = f
			}
			behind = true
		}
	}
	if !behind {
		marts = committed
	}
	return marts, committed
}

// PartitionsWithState lists the partitions of dataset that have a state
// directory under dataDir, in order.
func PartitionsWithState(dataDir, dataset string) ([]int, error) {
	entries, err := os.ReadDir(DatasetStateDir(dataDir, dataset))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "p") {
			continue
		}
		if p, err := strconv.Atoi(e.Name()[1:]); err == nil {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// ReadAllPartitionProgress reads the progress of every partition of
// dataset that has a state directory, each with its committed mark.
func ReadAllPartitionProgress(dataDir, dataset string) ([]PartitionProgress, error) {
	ps, err := PartitionsWithState(dataDir, dataset)
	if err != nil {
		return nil, err
	}
	out := make([]PartitionProgress, 0, len(ps))
	for _, p := range ps {
		pp, err := ReadOnePartitionProgress(dataDir, dataset, p)
		if err != nil {
			return nil, err
		}
		out = append(out, pp)
	}
	return out, nil
}

// FoldedByPartition turns a Folded map (partition number as a string, as
// JSON keeps it) into one by partition number.
func FoldedByPartition(folded map[string]uint64) map[int]uint64 {
	out := make(map[int]uint64, len(folded))
	for p, s := range folded {
		if n, err := strconv.Atoi(p); err == nil {
			out[n] = s
		}
	}
	return out
}
