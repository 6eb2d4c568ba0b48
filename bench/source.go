package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
)

// source turns generated orders into the run's messages: one record per
// message, or NDJSON chunks of BulkSize. Each message gets a traceparent
// whose trace id names the run and the message's index, so the
// aggregator's commit hook can tell when each one arrived.
type source struct {
	gen      *OrderGenerator
	mode     Mode
	bulkSize int
	seed     uint64
	runTag   uint64
	subject  string
	counts   Counts
	records  int64 // generated so far
	messages int64 // made so far
	chunk    bytes.Buffer
}

func newSource(cfg Config, dataset string, runTag uint64) *source {
	gen := NewOrderGenerator(cfg.Seed, cfg.InvalidShare, cfg.DuplicateShare)
	if cfg.Rate > 0 {
		// A soak is a steady state: event time moves at the offered rate,
		// so the lake and the marts grow in rows, not in days.
		gen.Step = time.Duration(float64(time.Second) / cfg.Rate)
	}
	return &source{
		gen:  gen,
		mode: cfg.Mode, bulkSize: cfg.BulkSize, seed: cfg.Seed, runTag: runTag,
		subject: subjects.Ingest(dataset),
	}
}

// next makes the next message from up to limit more records (limit > 0)
// and returns it with its record count and index.
func (s *source) next(limit int64) (msg *nats.Msg, records int, index int64) {
	index = s.messages
	s.messages++
	m := nats.NewMsg(s.subject)
	m.Header.Set(subjects.HeaderTraceParent, traceParent(s.runTag, index))
	if s.mode == ModeRecord {
		line, id := s.order()
		if id == "" {
			id = orderID(line)
		}
		m.Data = line
		m.Header.Set(subjects.HeaderMsgID, id)
		return m, 1, index
	}
	s.chunk.Reset()
	n := 0
	for ; n < s.bulkSize && int64(n) < limit; n++ {
		line, _ := s.order()
		s.chunk.Write(line)
		s.chunk.WriteByte('\n')
	}
	m.Data = bytes.Clone(s.chunk.Bytes())
	m.Header.Set(subjects.HeaderRecords, strconv.Itoa(n))
	// A chunk's id is its place in the run: a republished chunk is
	// dropped by the server, as the wire contract wants.
	m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("bench:%d:%d:%d", s.seed, s.bulkSize, index))
	return m, n, index
}

func (s *source) order() (line []byte, id string) {
	line, id, kind := s.gen.NextWithID()
	s.records++
	switch kind {
	case Valid:
		s.counts.Valid++
	case Invalid:
		s.counts.Invalid++
	case Duplicate:
		s.counts.Duplicate++
	}
	return line, id
}

// pregenerate makes the messages of events records before the clock
// starts, so the generator's cost is in no figure.
func (s *source) pregenerate(events int64) []*nats.Msg {
	var msgs []*nats.Msg
	for s.records < events {
		m, _, _ := s.next(events - s.records)
		msgs = append(msgs, m)
	}
	return msgs
}

// traceParent is a W3C traceparent whose trace id is the run's tag and the
// message's index (+1: an all-zero trace id is invalid).
func traceParent(runTag uint64, index int64) string {
	b := make([]byte, 0, 55)
	b = append(b, "00-"...)
	b = appendHex16(b, runTag)
	b = appendHex16(b, uint64(index)+1)
	b = append(b, '-')
	b = appendHex16(b, uint64(index)+1)
	b = append(b, "-01"...)
	return string(b)
}

// appendHex16 appends v as 16 lowercase hex digits.
func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}

// traceIndex is the message index a traceparent of this run carries.
func traceIndex(runTag uint64, tp string) (int64, bool) {
	// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
	if len(tp) < 35 || tp[2] != '-' {
		return 0, false
	}
	tag, err := strconv.ParseUint(tp[3:19], 16, 64)
	if err != nil || tag != runTag {
		return 0, false
	}
	n, err := strconv.ParseUint(tp[19:35], 16, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return int64(n - 1), true
}

// orderID is the record's order_id, as `jetfleet publish --id-field`
// would send it, or a digest of a record too broken to have one.
func orderID(line []byte) string {
	var o struct {
		OrderID string `json:"order_id"`
	}
	if json.Unmarshal(line, &o) == nil && o.OrderID != "" {
		return o.OrderID
	}
	return subjects.HashID(string(line))
}
