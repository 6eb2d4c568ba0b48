package message

import (
	"context"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Action is how the settle path ends a delivery.
type Action int

const (
	// Ack: publish the delivery's outputs and dead letters, then ack it.
	Ack Action = iota
	// Term: publish its dead letters, then terminate it. A delivery is
	// terminated when it was dead-lettered whole (after MaxDeliver
	// transient failures) or its only record was.
	Term
	// Nak: publish nothing and have it redelivered after Verdict.Delay.
	Nak
)

// Verdict is how a delivery is settled. The zero value acks.
type Verdict struct {
	Action Action
	Delay  time.Duration // of a Nak
	Reason string        // of a Term
	// Err is the error behind a Nak or a Term, for logs and the worker's
	// last error.
	Err error
}

// DeadLetter is a record of a delivery, or with Index -1 the whole
// message, on its way to the dead-letter stream.
type DeadLetter struct {
	Index  int
	Data   []byte
	Reason string
}

// Delivery is one fetched JetStream message of a batch.
type Delivery struct {
	Msg  jetstream.Msg
	Meta *jetstream.MsgMetadata
	// ID is the message's id: its Nats-Msg-Id, or <stream>:<seq>. The ids
	// of what it produces are derived from it.
	ID string
	// Bulk says the message carries NDJSON records (the Jf-Records header).
	Bulk bool
	// Lines are its records' bytes: the non-blank NDJSON lines of a bulk
	// message, the whole body of any other. They alias the message.
	Lines [][]byte
	// Proto is what its records have in common: a Record without Data
	// and Index (see Record).
	Proto Record
	// First is the index of its first record in the batch.
	First int
	// TraceParent is the traceparent of what the delivery produces: a
	// child span of the one it came with (set by the trace middleware).
	TraceParent string
	// Outputs are what its records produced, in record order.
	Outputs []Output
	// Dead are what goes to the dead-letter stream.
	Dead []DeadLetter
	// Verdict is how it is settled once Outputs and Dead are stored.
	Verdict Verdict

	one [1][]byte // Lines of a record-mode message
}

// SetBody makes the delivery's one record the message's body.
func (d *Delivery) SetBody(body []byte) {
	d.one[0] = body
	d.Lines = d.one[:]
}

// Record is the delivery's record i (0 <= i < len(Lines)).
func (d *Delivery) Record(i int) Record {
	r := d.Proto
	r.Data, r.Index = d.Lines[i], i
	return r
}

// Batch is what a handler chain processes: one delivery for a record
// handler (one record, or the records of a bulk message), several for a
// batch handler. Its records are its deliveries' in order: record i of the
// batch is record i-First of the delivery that holds it.
type Batch struct {
	Deliveries []*Delivery
	// Rejects are records that can never succeed, by index into the
	// batch's records; the retry middleware turns them into their
	// deliveries' dead letters.
	Rejects []Reject
}

// Len is the number of records of the batch.
func (b *Batch) Len() int {
	if len(b.Deliveries) == 0 {
		return 0
	}
	d := b.Deliveries[len(b.Deliveries)-1]
	return d.First + len(d.Lines)
}

// Records makes the batch's records, for a handler that takes them all at
// once.
func (b *Batch) Records() []Record {
	out := make([]Record, 0, b.Len())
	for _, d := range b.Deliveries {
		for i := range d.Lines {
			out = append(out, d.Record(i))
		}
	}
	return out
}

// DeliveryOf returns the delivery record i of the batch came in.
func (b *Batch) DeliveryOf(i int) *Delivery {
	if len(b.Deliveries) == 1 {
		return b.Deliveries[0]
	}
	k := sort.Search(len(b.Deliveries), func(k int) bool { return b.Deliveries[k].First > i }) - 1
	return b.Deliveries[max(k, 0)]
}

// HandlerFunc processes a batch. Its error stands for every delivery of
// the batch: nil when each record was handled or rejected, else the
// transient (or panic) error that has the whole batch retried.
type HandlerFunc func(ctx context.Context, b *Batch) error

// Middleware wraps a HandlerFunc with one concern (recover, timeout,
// retry, metrics, trace), as Watermill's router does.
type Middleware func(next HandlerFunc) HandlerFunc

// Chain wraps h in mw, the first outermost: Chain(h, a, b) runs a, then
// b, then h.
func Chain(h HandlerFunc, mw ...Middleware) HandlerFunc {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}
