package aggregate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nuid"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// A lake flush writes a file per month it touches, so a steady trickle of
// records makes many small files (a flush a second is 86,400 a day), which
// every reader of the lake then opens. After each checkpoint the builder
// compacts the month with the most small files: their rows go into one
// file, committed by an entry of the lake's log of its own that lists the
// files it replaces, and those are deleted. Compaction works only on files
// the checkpoint holds, so replaying the log after a crash never sees a
// compaction remove a file it has not added. A reader globbing the lake
// (rather than following the log) may see both the new file and the old
// ones for the moment between the new file's rename and the old files'
// deletion.

const (
	// compactFiles is how many small files a month needs before they are
	// compacted, and compactMax the most one compaction reads.
	compactFiles = 16
	compactMax   = 1024
	// smallFile is the size below which a lake file is small.
	smallFile = 32 << 20
	// compactBytes bounds the bytes one compaction reads.
	compactBytes = 512 << 20
)

// compaction is checkpoint.json's note of a compaction under way: its
// entry and the file it writes, so a restart removes the file when the
// entry did not commit.
type compaction struct {
	Owner string `json:"owner"`
	N     uint64 `json:"n"`
	File  string `json:"file"`
}

func compactionFile(dataDir, dataset string) string {
	return filepath.Join(builderDir(dataDir, dataset), "compaction.json")
}

// compact compacts the small files of one month, if one has enough.
func (b *MartBuilder) compact(ctx context.Context) error {
	ds := b.cfg.Dataset.Name
	lake := marts.LakePath(b.cfg.DataDir, ds)
	rows, err := b.conn.QueryContext(ctx, "SELECT path FROM "+lakeFilesTable)
	if err != nil {
		return err
	}
	byMonth := map[string][]string{}
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			rows.Close()
			return err
		}
		byMonth[path.Dir(p)] = append(byMonth[path.Dir(p)], p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var month string
	var small []string
	for m, files := range byMonth {
		var s []string
		var total int64
		sort.Strings(files)
		for _, f := range files {
			fi, err := os.Stat(filepath.Join(lake, filepath.FromSlash(f)))
			if err != nil {
				return fmt.Errorf("lake file %s: %w", f, err)
			}
			if fi.Size() < smallFile && len(s) < compactMax && total+fi.Size() <= compactBytes {
				s = append(s, f)
				total += fi.Size()
			}
		}
		if len(s) >= compactFiles && len(s) > len(small) {
			month, small = m, s
		}
	}
	if len(small) == 0 {
		return nil
	}
	start := time.Now()
	if b.owner == "" {
		b.owner = NewOwner("compact")
	}
	b.compactN++
	e := lakeEntry{Owner: b.owner, N: b.compactN, At: time.Now().UTC(), Removed: small, Partitions: map[string]uint64{}}
	name := path.Join(month, lakeFileName(e.Owner, e.N, 0))
	note, _ := json.Marshal(compaction{Owner: e.Owner, N: e.N, File: name})
	if err := marts.WriteFileAtomic(compactionFile(b.cfg.DataDir, ds), note, true); err != nil {
		return err
	}
	tmp := filepath.Join(tempDir(b.cfg.DataDir, ds), "compact-"+nuid.Next()+".parquet")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		return err
	}
	lits := make([]string, len(small))
	for i, f := range small {
		lits[i] = duckdb.Literal(filepath.Join(lake, filepath.FromSlash(f)))
	}
	if _, err := b.conn.ExecContext(ctx, fmt.Sprintf(`COPY (SELECT * FROM read_parquet([%s], union_by_name = true, hive_partitioning = false)) TO %s (FORMAT parquet, COMPRESSION %s)`,
		strings.Join(lits, ", "), duckdb.Literal(tmp), lakeCompression)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("compact %s: %w", month, err)
	}
	target := filepath.Join(lake, filepath.FromSlash(name))
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, target); err != nil {
		return err
	}
	if err := marts.SyncDir(filepath.Dir(target)); err != nil {
		return err
	}
	e.Files = []lakeEntryFile{{Path: name}}
	if err := writeLakeEntry(b.cfg.DataDir, ds, e); err != nil && !entryWritten(b.cfg.DataDir, ds, e) {
		// Not committed: the new file goes, the old ones stay.
		return errors.Join(err, os.Remove(target), os.Remove(compactionFile(b.cfg.DataDir, ds)))
	}
	// Committed: fold it in (it only swaps files) and delete the old ones.
	if err := b.fold(ctx, []lakeEntry{e}); err != nil {
		return err
	}
	if err := b.finishCompaction(e); err != nil {
		return err
	}
	b.log.Debug().Str("month", month).Int("files", len(small)).Dur("took", time.Since(start)).Msg("lake files compacted")
	return nil
}

// finishCompaction deletes the files a committed compaction replaced and
// its note.
func (b *MartBuilder) finishCompaction(e lakeEntry) error {
	lake := marts.LakePath(b.cfg.DataDir, b.cfg.Dataset.Name)
	var errs []error
	for _, f := range e.Removed {
		if err := os.Remove(filepath.Join(lake, filepath.FromSlash(f))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.Remove(compactionFile(b.cfg.DataDir, b.cfg.Dataset.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// resolveCompaction settles a compaction a crash interrupted: committed,
// its old files are deleted; not, its new file is.
func (b *MartBuilder) resolveCompaction() error {
	ds := b.cfg.Dataset.Name
	data, err := os.ReadFile(compactionFile(b.cfg.DataDir, ds))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c compaction
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("%w: %s: %v", marts.ErrBadManifest, compactionFile(b.cfg.DataDir, ds), err)
	}
	entry, err := os.ReadFile(lakeEntryPath(b.cfg.DataDir, ds, c.Owner, c.N))
	switch {
	case err == nil:
		var e lakeEntry
		if err := json.Unmarshal(entry, &e); err != nil {
			return err
		}
		return b.finishCompaction(e)
	case errors.Is(err, fs.ErrNotExist):
		// Not committed (an entry folded in is deleted only after the
		// checkpoint that follows it, by which time this note is gone).
		if err := os.Remove(filepath.Join(marts.LakePath(b.cfg.DataDir, ds), filepath.FromSlash(c.File))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return os.Remove(compactionFile(b.cfg.DataDir, ds))
	default:
		return err
	}
}
