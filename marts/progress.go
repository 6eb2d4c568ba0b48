package marts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Progress is what a dataset's aggregator has committed to its state.
type Progress struct {
	Dataset string `json:"dataset"`
	// CommittedSeq is the highest stream sequence committed to the state.
	CommittedSeq uint64 `json:"committed_seq"`
	// Records counts the distinct records in the state.
	Records int64 `json:"records"`
	// Duplicates counts records dropped as already seen.
	Duplicates int64     `json:"duplicates"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Folded is, by partition ("3"), the sequence up to which the mart
	// builder has folded that partition's committed records in. Against
	// the partitions' own progress (ReadAllPartitionProgress, fresher than
	// this mirror) it tells what is committed but not in the marts yet.
	Folded map[string]uint64 `json:"folded,omitempty"`
}

// WriteProgress records p for outside readers. It is a mirror of the
// state, rewritten after each commit, so it is not fsynced.
func WriteProgress(dataDir string, p Progress) error {
	return writeMirror(ProgressFile(dataDir, p.Dataset), p)
}

// writeMirror writes v as one line of JSON to path atomically, without
// fsync: progress files mirror a state that is durable on its own.
func writeMirror(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(b, '\n'), false)
}

// ReadProgress reads every dataset's progress file under dataDir.
func ReadProgress(dataDir string) ([]Progress, error) {
	entries, err := os.ReadDir(filepath.Join(dataDir, StateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Progress
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".progress.json") {
			continue
		}
		path := filepath.Join(dataDir, StateDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var p Progress
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadManifest, path, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// Pending names the marts and lakes (as "mart:<name>" or "lake:<dataset>")
// that have not yet folded in everything their dataset's state committed:
// empty means every output is as fresh as the state. A dataset whose
// progress file exists but which has no manifest yet is reported as
// "dataset:<name>".
func Pending(dataDir string) ([]string, error) {
	progress, err := ReadProgress(dataDir)
	if err != nil {
		return nil, err
	}
	manifests, err := ReadManifests(dataDir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range progress {
		seen := false
		for _, m := range manifests {
			if m.Dataset != p.Dataset {
				continue
			}
			seen = true
			if m.LastSeq < p.CommittedSeq {
				out = append(out, m.Kind+":"+m.Name)
			}
		}
		if !seen && p.CommittedSeq > 0 {
			out = append(out, "dataset:"+p.Dataset)
		}
	}
	return out, nil
}
