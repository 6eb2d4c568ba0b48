package aggregate

import (
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

	"github.com/jetfleet/jetfleet/marts"
)

// The lake's log lists the lake's files: each lake flush writes its files,
// then one entry naming them, which is the flush's commit. A reader that
// follows the log (the mart builder) sees every committed file once and no
// file of a flush that did not commit. Each owner (an aggregator replica's
// run) numbers its entries 1, 2, 3, ... with no gaps in a directory of its
// own, so replicas sharing a data dir never write the same name and a
// reader finds new entries by trying the next number.
//
//	lake/<dataset>/_log/<owner>/<n, 12 digits>.json

// lakeEntry is one lake flush, or one compaction of lake files.
type lakeEntry struct {
	Owner string          `json:"owner"`
	N     uint64          `json:"n"`
	At    time.Time       `json:"at"`
	Rows  int64           `json:"rows"`
	Files []lakeEntryFile `json:"files"`
	// Removed are files a compaction replaced by Files: their rows are
	// not new (Rows is 0).
	Removed []string `json:"removed,omitempty"`
	// Partitions are the key partitions whose journals the flush took,
	// with the committed sequence each reached (its LakeSeq).
	Partitions map[string]uint64 `json:"partitions"`
}

// lakeEntryFile is one file a flush added, relative to the lake directory.
type lakeEntryFile struct {
	Path string `json:"path"`
	Rows int64  `json:"rows"`
}

func lakeEntryPath(dataDir, dataset, owner string, n uint64) string {
	return filepath.Join(marts.LakeLogDir(dataDir, dataset), owner, fmt.Sprintf("%012d.json", n))
}

// writeLakeEntry commits a flush: the entry is written aside, synced and
// renamed into place.
func writeLakeEntry(dataDir, dataset string, e lakeEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return marts.WriteFileAtomic(lakeEntryPath(dataDir, dataset, e.Owner, e.N), append(b, '\n'), true)
}

// entryWritten reports whether e's entry is in the log (after a write
// that reported an error).
func entryWritten(dataDir, dataset string, e lakeEntry) bool {
	_, err := os.Stat(lakeEntryPath(dataDir, dataset, e.Owner, e.N))
	return err == nil
}

// lakeEntryCommitted reports whether flush n of owner committed: its entry
// is in the log, or the builder folded it in and has since removed it.
func lakeEntryCommitted(dataDir, dataset, owner string, n uint64) (bool, error) {
	_, err := os.Stat(lakeEntryPath(dataDir, dataset, owner, n))
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	cp, err := readCheckpoint(dataDir, dataset)
	if err != nil {
		return false, err
	}
	return cp.Processed[owner] >= n, nil
}

// lakeOwners lists the owners that have a log.
func lakeOwners(dataDir, dataset string) ([]string, error) {
	entries, err := os.ReadDir(marts.LakeLogDir(dataDir, dataset))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// readLakeEntries returns the log's entries after processed[owner] for
// every owner, each owner's in order.
func readLakeEntries(dataDir, dataset string, processed map[string]uint64) ([]lakeEntry, error) {
	owners, err := lakeOwners(dataDir, dataset)
	if err != nil {
		return nil, err
	}
	var out []lakeEntry
	for _, owner := range owners {
		for n := processed[owner] + 1; ; n++ {
			b, err := os.ReadFile(lakeEntryPath(dataDir, dataset, owner, n))
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return nil, err
			}
			var e lakeEntry
			if err := json.Unmarshal(b, &e); err != nil {
				return nil, fmt.Errorf("%w: lake log %s/%d: %v", marts.ErrBadManifest, owner, n, err)
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// removeLakeEntries deletes owner's entries up to n (the builder folded
// them in and recorded so in its checkpoint).
func removeLakeEntries(dataDir, dataset, owner string, from, upto uint64) error {
	var errs []error
	for n := from; n <= upto; n++ {
		if err := os.Remove(lakeEntryPath(dataDir, dataset, owner, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// lakeFileName is the name of file i of flush n of owner, in its date's
// directory.
func lakeFileName(owner string, n uint64, i int) string {
	return "data-" + owner + "-" + strconv.FormatUint(n, 10) + "-" + strconv.Itoa(i) + ".parquet"
}

// removeFlushFiles deletes what an uncommitted flush n of owner may have
// left: its files in the date directories and its temp directory.
func removeFlushFiles(dataDir, dataset, owner string, n uint64) error {
	dir := marts.LakePath(dataDir, dataset)
	paths, err := filepath.Glob(filepath.Join(dir, "*", "data-"+owner+"-"+strconv.FormatUint(n, 10)+"-*.parquet"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths {
		errs = append(errs, os.Remove(p))
	}
	errs = append(errs, os.RemoveAll(flushTempDir(dataDir, dataset, owner, n)))
	return errors.Join(errs...)
}

// Files are written under the dataset's state directory and renamed into
// the lake or a mart: DuckDB's ** glob goes into hidden directories, so a
// temp directory inside them would show half-written files to readers.

func flushTempDir(dataDir, dataset, owner string, n uint64) string {
	return filepath.Join(tempDir(dataDir, dataset), "lake-"+owner+"-"+strconv.FormatUint(n, 10))
}

func tempDir(dataDir, dataset string) string {
	return filepath.Join(marts.DatasetStateDir(dataDir, dataset), "tmp")
}
