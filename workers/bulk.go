package workers

import (
	"bytes"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
)

// SplitBulk returns the records of a message: the NDJSON lines of a bulk
// message (one with the Jf-Records header), or the whole body otherwise.
// Empty lines of a bulk body are skipped. The slices alias data.
func SplitBulk(header nats.Header, data []byte) (records [][]byte, bulk bool) {
	n, bulk := bulkRecords(header)
	if !bulk {
		return [][]byte{data}, false
	}
	if n <= 0 || n > 1<<20 {
		n = bytes.Count(data, []byte{'\n'}) + 1
	}
	records = make([][]byte, 0, n)
	eachLine(data, func(line []byte) { records = append(records, line) })
	return records, true
}

// bulkRecords reads the Jf-Records header: whether the message is a bulk
// chunk, and how many records it says it carries (0 if unreadable).
func bulkRecords(header nats.Header) (int, bool) {
	v := header.Get(subjects.HeaderRecords)
	if v == "" {
		return 0, false
	}
	n, _ := strconv.Atoi(v)
	return n, true
}

// eachLine calls f with every non-blank line of an NDJSON body, without
// its line end.
func eachLine(data []byte, f func(line []byte)) {
	for len(data) > 0 {
		var line []byte
		if line, data = nextLine(data); line != nil {
			f(line)
		}
	}
}

// nextLine cuts the first line off data: the line without its end, nil
// if it is blank, and the rest.
func nextLine(data []byte) (line, rest []byte) {
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
