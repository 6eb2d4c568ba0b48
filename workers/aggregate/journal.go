package aggregate

import (
	"bufio"
	"bytes"
	"encoding/base64"
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
// (read_json). A batch is committed once it is written and synced (its
// keys, then its lines, and one sync); the runtime acks its messages after that. A lake
// flush takes the closed segments; once the lake holds them they are
// deleted.
//
// A batch is a keys line, then a line per new record:
//
//	{"_jf_k":"<base64 of 32-byte entries>"}
//	{"_jf_at":<publish time, unix µs>,<schema fields>}
//
// The keys line holds an entry for each record of the batch that was new
// or a duplicate, in batch order: its key's hash, the stream position that
// brought it, and whether it was a duplicate (which has no line); a large
// batch has a keys line per keysPerLine entries, all before its records.
// So a restart re-reads the keys without parsing records, and DuckDB skips
// the keys lines (no _jf_at). A crash mid-write leaves a torn tail: a last
// line without its newline is cut off, and so are the entries of records
// whose lines are missing (the batch was never acked; its messages come
// again).
type journal struct {
	dir  string
	sync bool
	seg  uint64 // the segment appended to
	f    *os.File
	size int64
	buf  []byte
}

const (
	journalPrefix, journalSuffix = "journal-", ".ndjson"
	// keysPerLine bounds a keys line (about 43 bytes an entry).
	keysPerLine = 8192
)

var keysLinePrefix = []byte(`{"_jf_k":"`)

func segmentPath(dir string, seg uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%010d%s", journalPrefix, seg, journalSuffix))
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
	f, err := os.OpenFile(segmentPath(j.dir, j.seg), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	j.f, j.size = f, 0
	return nil
}

// Append writes a batch, its keys lines and then its record lines, and
// with sync makes it durable. On failure the segment is cut back to where
// it was, so it never holds part of a batch the runtime did not ack.
func (j *journal) Append(entries []journalEntry, lines []byte) error {
	if len(entries) == 0 {
		return nil
	}
	if j.f == nil {
		if err := j.create(); err != nil {
			return err
		}
	}
	// Two writes, not a copy of the lines behind the keys: a crash
	// between them leaves a torn tail like any other.
	j.buf = appendKeysLines(j.buf[:0], entries)
	_, err := j.f.Write(j.buf)
	if err == nil && len(lines) > 0 {
		_, err = j.f.Write(lines)
	}
	if err == nil && j.sync {
		err = j.f.Sync()
	}
	if len(j.buf) > maxKeptBuffer {
		j.buf = nil
	}
	if err != nil {
		if terr := j.f.Truncate(j.size); terr != nil {
			// The segment may hold a torn batch; start a new one, and let
			// the next open cut this one's tail.
			j.f.Close()
			j.f = nil
			j.seg++
		} else {
			_, _ = j.f.Seek(j.size, io.SeekStart)
		}
		return fmt.Errorf("journal %s: %w", j.dir, err)
	}
	j.size += int64(len(j.buf) + len(lines))
	return nil
}

func appendKeysLines(dst []byte, entries []journalEntry) []byte {
	var raw [keyEntrySize]byte
	for len(entries) > 0 {
		n := min(len(entries), keysPerLine)
		dst = append(dst, keysLinePrefix...)
		// Entries are 32 bytes, a multiple of 3 short of none: encode in
		// groups of three so the line has no padding until the end.
		var group []byte
		for _, e := range entries[:n] {
			e.put(raw[:])
			group = append(group, raw[:]...)
			if len(group) == 3*keyEntrySize {
				dst = base64.StdEncoding.AppendEncode(dst, group)
				group = group[:0]
			}
		}
		dst = base64.StdEncoding.AppendEncode(dst, group)
		dst = append(dst, "\"}\n"...)
		entries = entries[n:]
	}
	return dst
}

// Rotate closes the current segment if it holds anything and starts the
// next; it returns the last closed segment.
func (j *journal) Rotate() (uint64, error) {
	if j.f == nil { // a failed append left no current segment
		return j.seg - 1, j.create()
	}
	if j.size == 0 {
		return j.seg - 1, nil
	}
	if err := j.f.Close(); err != nil {
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
	err := j.f.Close()
	j.f = nil
	if j.size == 0 {
		_ = os.Remove(segmentPath(j.dir, j.seg))
	}
	return err
}

// removeSegment deletes a segment.
func removeSegment(dir string, seg uint64) error {
	if err := os.Remove(segmentPath(dir, seg)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
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
	entries []journalEntry // each record entry has its line
	lines   int64          // record lines
	maxLine int
}

var errBadJournal = errors.New("journal corrupt")

// readSegment reads a segment's key entries and counts its record lines,
// cutting off what a crash left half-written: a last line without its
// newline, and the entries of the last batch's records whose lines are
// missing (that batch was not acked).
func readSegment(dir string, seg uint64) (segmentRead, error) {
	var r segmentRead
	path := segmentPath(dir, seg)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return r, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var (
		good     int64 // end of the last whole batch's last line
		off      int64
		batch    []journalEntry // the batch being read
		want     int64          // its record lines still to come
		inRecord bool           // its keys lines are over
	)
	commit := func() {
		r.entries = append(r.entries, batch...)
		batch, want, inRecord = batch[:0:0], 0, false
		good = off
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return r, fmt.Errorf("read %s: %w", path, err)
		}
		if len(line) == 0 || line[len(line)-1] != '\n' {
			break // torn tail, or the end
		}
		r.maxLine = max(r.maxLine, len(line))
		if bytes.HasPrefix(line, keysLinePrefix) {
			if inRecord || (want == 0 && len(batch) > 0) {
				commit() // a new batch begins
			}
			entries, perr := parseKeysLine(line)
			if perr != nil {
				return r, fmt.Errorf("%s at byte %d: %w", path, off, perr)
			}
			batch = append(batch, entries...)
			for _, e := range entries {
				if !e.dup {
					want++
				}
			}
		} else {
			if want == 0 {
				return r, fmt.Errorf("%s at byte %d: %w: a record line without its key", path, off, errBadJournal)
			}
			want--
			r.lines++
			inRecord = true
		}
		off += int64(len(line))
		if want == 0 {
			commit()
		}
		if err != nil {
			break
		}
	}
	// A batch cut short: its record lines are dropped with its entries.
	if want > 0 {
		r.lines -= int64(countRecords(batch)) - want
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > good {
		if err := f.Truncate(good); err != nil {
			return r, fmt.Errorf("cut torn tail of %s: %w", path, err)
		}
	}
	return r, nil
}

func countRecords(entries []journalEntry) int {
	n := 0
	for _, e := range entries {
		if !e.dup {
			n++
		}
	}
	return n
}

func parseKeysLine(line []byte) ([]journalEntry, error) {
	b64, ok := bytes.CutPrefix(line, keysLinePrefix)
	if !ok {
		return nil, errBadJournal
	}
	b64, ok = bytes.CutSuffix(b64, []byte("\"}\n"))
	if !ok {
		return nil, fmt.Errorf("%w: keys line", errBadJournal)
	}
	raw, err := base64.StdEncoding.AppendDecode(nil, b64)
	if err != nil || len(raw)%keyEntrySize != 0 {
		return nil, fmt.Errorf("%w: keys line", errBadJournal)
	}
	out := make([]journalEntry, 0, len(raw)/keyEntrySize)
	for i := 0; i < len(raw); i += keyEntrySize {
		out = append(out, journalEntry{keyEntry: getKeyEntry(raw[i:]), dup: binary.LittleEndian.Uint32(raw[i+28:])&entryDup != 0})
	}
	return out, nil
}
