package workers

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
)

// Record is one record handed to a [Handler].
type Record struct {
	// Data is the record as published: normally one JSON object, but it may
	// be anything a client sent (malformed JSON, invalid UTF-8).
	Data []byte
	// Subject is the subject of the message the record came in.
	Subject string
	// Header is the message's header, shared by every record of a bulk
	// message. Read only.
	Header nats.Header
	// Index is the record's position in a bulk message, 0 in record mode.
	Index int
	// Bulk says the record came in a bulk message.
	Bulk bool
	// Seq is the stream sequence of the message.
	Seq uint64
	// MsgID is the message's id: its Nats-Msg-Id, or stream:sequence.
	MsgID string
	// Delivered counts deliveries of the message, 1 the first time.
	Delivered uint64
	// Published is when the server stored the message.
	Published time.Time
}

// Output is one record a handler produces for Subject.
type Output struct {
	Subject string
	Data    []byte
	// MsgID, when set, is the output's Nats-Msg-Id instead of the one
	// derived from its position, and the output is always published as a
	// message of its own (also in bulk mode): for outputs, such as alerts,
	// whose id must not depend on what else the input produced.
	MsgID string
}

// Handler processes one record. The runtime calls it from one goroutine
// per worker; a handler is not shared between workers, so it may keep
// private state. Its error is the ack decision (see the package doc).
type Handler interface {
	Handle(ctx context.Context, rec Record) ([]Output, error)
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(ctx context.Context, rec Record) ([]Output, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, rec Record) ([]Output, error) { return f(ctx, rec) }

// SplitBulk returns the records of a message: the NDJSON lines of a bulk
// message (one with the Jf-Records header), or the whole body otherwise.
// Empty lines of a bulk body are skipped. The slices alias data.
func SplitBulk(header nats.Header, data []byte) (records [][]byte, bulk bool) {
	if header == nil || header.Get(subjects.HeaderRecords) == "" {
		return [][]byte{data}, false
	}
	n, _ := strconv.Atoi(header.Get(subjects.HeaderRecords))
	if n <= 0 || n > 1<<20 {
		n = bytes.Count(data, []byte{'\n'}) + 1
	}
	records = make([][]byte, 0, n)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		records = append(records, line)
	}
	return records, true
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

// Passthrough is the handler of a step that forwards every record
// unchanged to the step's output subject for the record's dataset.
func Passthrough(outSubject string) Handler {
	return HandlerFunc(func(_ context.Context, rec Record) ([]Output, error) {
		return []Output{{Subject: outSubject, Data: rec.Data}}, nil
	})
}
