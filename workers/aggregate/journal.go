package aggregate

import (
	"bufio"
	"bytes"
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
// (read_json). A batch is committed once its lines are written and synced;
// the runtime acks its messages after that. A lake flush takes the closed
// segments; once the lake holds them they are deleted.
//
// Each line starts with fixed fields, so a restart re-reads the keys
// without a JSON parser:
//
//	{"_jf_h":"<key hash, 32 hex>","_jf_seq":<stream seq>,"_jf_idx":<index in message>,"_jf_at":<publish time, unix µs>,<schema fields>}
//	{"_jf_h":"<key hash>","_jf_seq":<seq>,"_jf_idx":<idx>,"_jf_dup":true}
//
// The second form marks a record dropped as a duplicate, so its message
// redelivered is not counted twice. A line is whole or absent: a crash
// mid-write leaves a torn tail, which the next open cuts off (its messages
// were not acked and come again).
type journal struct {
	dir  string
	sync bool
	seg  uint64 // the segment appended to
	f    *os.File
	size int64
}

const journalPrefix, journalSuffix = "journal-", ".ndjson"

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

// Append writes lines (whole NDJSON lines) and, with sync, makes them
// durable. On failure the segment is cut back to where it was, so it never
// holds part of a batch the runtime did not ack.
func (j *journal) Append(lines []byte) error {
	if len(lines) == 0 {
		return nil
	}
	if j.f == nil {
		if err := j.create(); err != nil {
			return err
		}
	}
	_, err := j.f.Write(lines)
	if err == nil && j.sync {
		err = j.f.Sync()
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
	j.size += int64(len(lines))
	return nil
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

// Empty reports whether the current segment holds nothing.
func (j *journal) Empty() bool { return j.size == 0 }

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

// journalLine is a journal line's fixed fields.
type journalLine struct {
	h    keyHash
	pos  position
	dup  bool
	size int // bytes, newline included
}

var (
	lineHash = []byte(`{"_jf_h":"`)
	lineSeq  = []byte(`","_jf_seq":`)
	lineIdx  = []byte(`,"_jf_idx":`)
	lineAt   = []byte(`,"_jf_at":`)
	lineDup  = []byte(`,"_jf_dup":true}`)
)

// appendRecordPrefix starts a record's line; the record's canonical
// fields and the closing brace follow.
func appendRecordPrefix(dst []byte, h keyHash, pos position, atMicros int64) []byte {
	dst = append(dst, lineHash...)
	dst = h.appendHex(dst)
	dst = append(dst, lineSeq...)
	dst = strconv.AppendUint(dst, pos.seq, 10)
	dst = append(dst, lineIdx...)
	dst = strconv.AppendUint(dst, uint64(pos.idx), 10)
	dst = append(dst, lineAt...)
	return strconv.AppendInt(dst, atMicros, 10)
}

// appendDupLine writes the whole line marking a dropped duplicate.
func appendDupLine(dst []byte, h keyHash, pos position) []byte {
	dst = append(dst, lineHash...)
	dst = h.appendHex(dst)
	dst = append(dst, lineSeq...)
	dst = strconv.AppendUint(dst, pos.seq, 10)
	dst = append(dst, lineIdx...)
	dst = strconv.AppendUint(dst, uint64(pos.idx), 10)
	dst = append(dst, lineDup...)
	return append(dst, '\n')
}

var errBadJournalLine = errors.New("bad journal line")

func parseJournalLine(line []byte) (journalLine, error) {
	var l journalLine
	rest, ok := bytes.CutPrefix(line, lineHash)
	if !ok || len(rest) < 32 {
		return l, errBadJournalLine
	}
	if l.h, ok = parseKeyHash(rest[:32]); !ok {
		return l, errBadJournalLine
	}
	if rest, ok = bytes.CutPrefix(rest[32:], lineSeq); !ok {
		return l, errBadJournalLine
	}
	var err error
	if l.pos.seq, rest, err = cutUint(rest, 64); err != nil {
		return l, err
	}
	if rest, ok = bytes.CutPrefix(rest, lineIdx); !ok {
		return l, errBadJournalLine
	}
	var idx uint64
	if idx, rest, err = cutUint(rest, 32); err != nil {
		return l, err
	}
	l.pos.idx = uint32(idx)
	switch {
	case bytes.Equal(rest, lineDup):
		l.dup = true
	case bytes.HasPrefix(rest, lineAt) && rest[len(rest)-1] == '}':
	default:
		return l, errBadJournalLine
	}
	return l, nil
}

func cutUint(b []byte, bits int) (uint64, []byte, error) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(string(b[:i]), 10, bits)
	if err != nil {
		return 0, nil, errBadJournalLine
	}
	return n, b[i:], nil
}

// scanSegment calls each for every whole line of a segment and cuts off a
// torn tail: a last line without its newline, or one that does not parse
// (a crash mid-write). Lines before it that do not parse are corruption.
func scanSegment(path string, each func(journalLine)) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if len(line) == 0 || line[len(line)-1] != '\n' {
			break // torn tail (or end)
		}
		l, perr := parseJournalLine(line[:len(line)-1])
		l.size = len(line)
		if perr != nil {
			// Only the last line can be torn; anything before a good line
			// is corruption the partition must not paper over.
			if _, peek := r.Peek(1); peek == nil {
				return fmt.Errorf("%s: %w at byte %d", path, errBadJournalLine, good)
			}
			break
		}
		each(l)
		good += int64(len(line))
		if err != nil {
			break
		}
	}
	if fi, err := f.Stat(); err == nil && fi.Size() > good {
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("cut torn tail of %s: %w", path, err)
		}
	}
	return nil
}
