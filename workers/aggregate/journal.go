package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A partition's journal holds the records it committed that are not in the
// lake yet, as NDJSON segments that DuckDB reads straight into a lake flush
// (read_json). A batch is committed once it is written and synced; the
// runtime acks its messages after that. A lake flush takes the closed
// segments; once the lake holds them they are deleted.
//
// A segment is two files: journal-<n>.ndjson, a line per new record with
// its publish time and schema fields,
//
//	{"_jf_at":<publish time, unix µs>,<schema fields>}
//
// and journal-<n>.keys, a 32-byte entry per record of the batch that was
// new or a duplicate, in batch order: its key's hash and the stream
// position that brought it, and whether it was a duplicate (which has no
// line). The keys file is written and synced first, so after a crash it
// holds at least an entry per line: the entries of a batch whose lines
// were cut off (never acked) are dropped when the segment is read again,
// and its messages come again. DuckDB parses only the records, and a
// restart re-reads the keys without parsing JSON.
type journal struct {
	dir   string
	sync  bool
	seg   uint64 // the segment appended to
	f, k  *os.File
	size  int64 // of the lines file
	ksize int64 // of the keys file
}

const (
	journalPrefix, journalSuffix = "journal-", ".ndjson"
	journalKeysSuffix            = ".keys"
)

func segmentPath(dir string, seg uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%010d%s", journalPrefix, seg, journalSuffix))
}

func segmentKeysPath(dir string, seg uint64) string {
	return strings.TrimSuffix(segmentPath(dir, seg), journalSuffix) + journalKeysSuffix
}

// segments lists dir's journal segments in order.
func segments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, journalPrefix) || !strings.HasSuffix(name, journalSuffix) {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, journalPrefix), journalSuffix), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}

// openJournal starts appending to segment seg (created empty).
func openJournal(dir string, seg uint64, sync bool) (*journal, error) {
	j := &journal{dir: dir, sync: sync, seg: seg}
	if err := j.create(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *journal) create() error {
	k, err := os.OpenFile(segmentKeysPath(j.dir, j.seg), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(segmentPath(j.dir, j.seg), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		k.Close()
		return err
	}
	j.f, j.k, j.size, j.ksize = f, k, 0, 0
	return nil
}

// Append writes a batch: its key entries (synced first), then its lines,
// synced. On failure both files are cut back to where they were, so a
// segment never holds part of a batch the runtime did not ack.
func (j *journal) Append(entries []journalEntry, lines []byte) error {
	if len(entries) == 0 {
		return nil
	}
	if j.f == nil {
		if err := j.create(); err != nil {
			return err
		}
	}
	buf := make([]byte, len(entries)*keyEntrySize)
	for i, e := range entries {
		e.put(buf[i*keyEntrySize:])
	}
	_, err := j.k.Write(buf)
	if err == nil && j.sync {
		err = j.k.Sync()
	}
	if err == nil {
		_, err = j.f.Write(lines)
	}
	if err == nil && j.sync {
		err = j.f.Sync()
	}
	if err != nil {
		terr := errors.Join(j.f.Truncate(j.size), j.k.Truncate(j.ksize))
		if terr != nil {
			// The segment may hold a torn batch; start a new one, and let
			// the next open cut this one's tail.
			j.f.Close()
			j.k.Close()
			j.f, j.k = nil, nil
			j.seg++
		} else {
			_, _ = j.f.Seek(j.size, io.SeekStart)
			_, _ = j.k.Seek(j.ksize, io.SeekStart)
		}
		return fmt.Errorf("journal %s: %w", j.dir, err)
	}
	j.size += int64(len(lines))
	j.ksize += int64(len(buf))
	return nil
}

// Rotate closes the current segment if it holds anything and starts the
// next; it returns the last closed segment.
func (j *journal) Rotate() (uint64, error) {
	if j.f == nil { // a failed append left no current segment
		return j.seg - 1, j.create()
	}
	if j.ksize == 0 {
		return j.seg - 1, nil
	}
	if err := errors.Join(j.f.Close(), j.k.Close()); err != nil {
		return 0, err
	}
	closed := j.seg
	j.seg++
	return closed, j.create()
}

func (j *journal) Close() error {
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.f.Close(), j.k.Close())
	j.f, j.k = nil, nil
	if j.ksize == 0 {
		_ = os.Remove(segmentPath(j.dir, j.seg))
		_ = os.Remove(segmentKeysPath(j.dir, j.seg))
	}
	return err
}

// removeSegment deletes both files of a segment.
func removeSegment(dir string, seg uint64) error {
	var errs []error
	for _, p := range []string{segmentPath(dir, seg), segmentKeysPath(dir, seg)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// journalEntry is a key entry of a journal segment.
type journalEntry struct {
	keyEntry
	dup bool
}

const entryDup = 1

func (e journalEntry) put(b []byte) {
	e.keyEntry.put(b)
	if e.dup {
		binary.LittleEndian.PutUint32(b[28:], entryDup)
	}
}

// appendRecordPrefix starts a record's line; the record's canonical
// fields and the closing brace follow.
func appendRecordPrefix(dst []byte, atMicros int64) []byte {
	dst = append(dst, `{"_jf_at":`...)
	return strconv.AppendInt(dst, atMicros, 10)
}

// segmentRead is what reading a segment back found.
type segmentRead struct {
	entries []journalEntry // matched: a line for each record entry
	lines   int64
	maxLine int
}

// readSegment reads a segment's key entries and counts its lines, cutting
// off what a crash left half-written: a last line without its newline, and
// the entries of records whose lines are missing (a batch whose lines were
// not all written was never acked).
func readSegment(dir string, seg uint64) (segmentRead, error) {
	var r segmentRead
	lines, lineEnd, err := countLines(segmentPath(dir, seg), &r.maxLine)
	if err != nil {
		return r, err
	}
	r.lines = lines
	kf, err := os.OpenFile(segmentKeysPath(dir, seg), os.O_RDWR, 0)
	if err != nil {
		return r, err
	}
	defer kf.Close()
	data, err := io.ReadAll(kf)
	if err != nil {
		return r, err
	}
	var records int64
	keep := 0
	for off := 0; off+keyEntrySize <= len(data); off += keyEntrySize {
		e := journalEntry{keyEntry: getKeyEntry(data[off:]), dup: binary.LittleEndian.Uint32(data[off+28:])&entryDup != 0}
		if !e.dup {
			if records == lines {
				break // its line is missing: the batch was cut off
			}
			records++
		}
		r.entries = append(r.entries, e)
		keep = off + keyEntrySize
	}
	if records < lines {
		return r, fmt.Errorf("%s: %w: %d lines but keys for %d", segmentPath(dir, seg), errBadJournal, lines, records)
	}
	if keep < len(data) {
		if err := kf.Truncate(int64(keep)); err != nil {
			return r, fmt.Errorf("cut torn tail of %s: %w", segmentKeysPath(dir, seg), err)
		}
	}
	if err := os.Truncate(segmentPath(dir, seg), lineEnd); err != nil {
		return r, err
	}
	return r, nil
}

var errBadJournal = errors.New("journal corrupt")

// countLines counts the whole lines of a file and returns where the last
// one ends; it notes the longest in maxLine.
func countLines(path string, maxLine *int) (n, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var off, start int64
	for {
		m, rerr := f.Read(buf)
		for i := 0; i < m; i++ {
			if buf[i] == '\n' {
				n++
				end = off + int64(i) + 1
				*maxLine = max(*maxLine, int(end-start))
				start = end
			}
		}
		off += int64(m)
		if errors.Is(rerr, io.EOF) {
			return n, end, nil
		}
		if rerr != nil {
			return 0, 0, rerr
		}
	}
}
