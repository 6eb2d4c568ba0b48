package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
)

// input is a run's messages, generated before the clock starts so the
// generator's cost is not in any figure.
type input struct {
	msgs   []*nats.Msg
	counts Counts
}

func generate(cfg Config, dataset string) input {
	gen := NewOrderGenerator(cfg.Seed, cfg.InvalidShare, cfg.DuplicateShare)
	var in input
	subject := subjects.Ingest(dataset)
	var chunk bytes.Buffer
	n := 0
	flushChunk := func() {
		if n == 0 {
			return
		}
		m := nats.NewMsg(subject)
		m.Data = bytes.Clone(chunk.Bytes())
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(n))
		// A chunk's id is its place in the run: a republished chunk is
		// dropped by the server, as the wire contract wants.
		m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("bench:%d:%d:%d", cfg.Seed, cfg.BulkSize, len(in.msgs)))
		in.msgs = append(in.msgs, m)
		chunk.Reset()
		n = 0
	}
	for range cfg.Events {
		line, kind := gen.Next()
		switch kind {
		case Valid:
			in.counts.Valid++
		case Invalid:
			in.counts.Invalid++
		case Duplicate:
			in.counts.Duplicate++
		}
		if cfg.Mode == ModeRecord {
			m := nats.NewMsg(subject)
			m.Data = line
			m.Header.Set(subjects.HeaderMsgID, orderID(line))
			in.msgs = append(in.msgs, m)
			continue
		}
		chunk.Write(line)
		chunk.WriteByte('\n')
		if n++; n == cfg.BulkSize {
			flushChunk()
		}
	}
	flushChunk()
	return in
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
