package marts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Kinds of [Manifest].
const (
	KindMart = "mart"
	KindLake = "lake"
)

// Column is one column of a mart: its name and DuckDB type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Manifest describes one mart (or one dataset's lake) as last flushed.
type Manifest struct {
	// Name is the mart's name, or the dataset's for a lake.
	Name string `json:"name"`
	// Kind is KindMart or KindLake.
	Kind string `json:"kind"`
	// Dataset is the dataset the mart is computed from.
	Dataset string `json:"dataset"`
	// Columns are the mart's columns in SELECT order, partition columns
	// included (they live in directory names, not in the files).
	Columns []Column `json:"columns"`
	// PartitionBy are the partition columns, none for one file.
	PartitionBy []string `json:"partition_by,omitempty"`
	// Rows is the number of rows over all partitions.
	Rows int64 `json:"rows"`
	// Partitions is the number of partition directories (1 when
	// unpartitioned and written).
	Partitions int `json:"partitions"`
	// UpdatedAt is when the last flush finished.
	UpdatedAt time.Time `json:"updated_at"`
	// LastSeq is the highest stream sequence folded into the files.
	LastSeq uint64 `json:"last_seq"`
	// Rebuilding says why the mart is being recomputed from the lake
	// ("definition changed"); its files are still the old ones meanwhile.
	Rebuilding string `json:"rebuilding,omitempty"`
	// RebuiltAt is when the last recomputation from the lake was written.
	RebuiltAt *time.Time `json:"rebuilt_at,omitempty"`
	// Dir is the directory the manifest describes (filled in on read).
	Dir string `json:"-"`
}

// Glob is the pattern of the manifest's Parquet files.
func (m Manifest) Glob() string {
	if len(m.PartitionBy) == 0 {
		return filepath.Join(m.Dir, "*.parquet")
	}
	return filepath.Join(m.Dir, "**", "*.parquet")
}

// ReadManifest reads the manifest in dir (a mart or lake directory).
func ReadManifest(dir string) (Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrBadManifest, filepath.Join(dir, ManifestFile), err)
	}
	m.Dir = dir
	return m, nil
}

// ReadManifests reads every mart and lake manifest under dataDir, marts
// first, each group sorted by name. A missing directory is no error.
func ReadManifests(dataDir string) ([]Manifest, error) {
	var out []Manifest
	for _, sub := range []string{MartsDir, LakeDir} {
		entries, err := os.ReadDir(filepath.Join(dataDir, sub))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
		for _, e := range entries {
			if !e.IsDir() {
				continue
			}
			m, err := ReadManifest(filepath.Join(dataDir, sub, e.Name()))
			if errors.Is(err, fs.ErrNotExist) {
				continue // created, never flushed
			}
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// WriteManifest replaces the manifest in m.Dir atomically and durably.
func WriteManifest(m Manifest) error { return writeManifest(m, true) }

// WriteManifestMirror replaces the manifest in m.Dir atomically, without
// syncing: for a writer that syncs later, and redoes its writes after a
// crash.
func WriteManifestMirror(m Manifest) error { return writeManifest(m, false) }

func writeManifest(m Manifest, durable bool) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(m.Dir, ManifestFile), append(b, '\n'), durable)
}

// WriteFileAtomic writes data to a temp file next to path and renames it
// over path, so readers see the old or the new content, never a part.
// With durable, the file and its directory are fsynced.
func WriteFileAtomic(path string, data []byte, durable bool) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if durable {
		return SyncDir(dir)
	}
	return nil
}

// SyncDir fsyncs a directory, making renames in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
