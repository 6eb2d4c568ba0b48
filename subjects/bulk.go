package subjects

import (
	"bytes"
	"strconv"

	"github.com/nats-io/nats.go"
)

// BulkRecords reads the HeaderRecords header: whether the message is a
// bulk chunk, and how many records it says it carries (0 if unreadable).
func BulkRecords(header nats.Header) (int, bool) {
	v := header.Get(HeaderRecords)
	if v == "" {
		return 0, false
	}
	n, _ := strconv.Atoi(v)
	return n, true
}

// SplitBulk returns the records of a message: the NDJSON lines of a bulk
// message (one with the Jf-Records header), or the whole body otherwise.
// Empty lines of a bulk body are skipped. The slices alias data.
func SplitBulk(header nats.Header, data []byte) (records [][]byte, bulk bool) {
	n, bulk := BulkRecords(header)
	if !bulk {
		return [][]byte{data}, false
	}
	if n <= 0 || n > 1<<20 {
		n = bytes.Count(data, []byte{'\n'}) + 1
	}
	records = make([][]byte, 0, n)
	for len(data) > 0 {
		var line []byte
		if line, data = NextLine(data); line != nil {
			records = append(records, line)
		}
	}
	return records, true
}

// NextLine cuts the first line off an NDJSON bulk body: the line without
// its end (and carriage return), nil if it is blank, and the rest.
func NextLine(data []byte) (line, rest []byte) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return trimLine(data[:i]), data[i+1:]
	}
	return trimLine(data), nil
}

// trimLine is a line without its carriage return, nil if it is blank.
func trimLine(line []byte) []byte {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	// A record starts with '{' (or at least not with a space): only
	// other lines need the blank check.
	if len(line) == 0 || line[0] <= ' ' && len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	return line
}

// JoinBulk builds a bulk body from records: one per line.
func JoinBulk(records [][]byte) []byte {
	size := 0
	for _, r := range records {
		size += len(r) + 1
	}
	out := make([]byte, 0, size)
	for i, r := range records {
		if i > 0 {
			out = append(out, '\n')
		}
		out = append(out, r...)
	}
	return out
}
