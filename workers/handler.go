package workers

import (
	"context"
	"slices"

	"github.com/jetfleet/jetfleet/workers/message"
)

type (
	// Record is one record handed to a [Handler] (see [message.Record]).
	Record = message.Record
	// Output is one record a handler produces (see [message.Output]).
	Output = message.Output
	// Reject is a record of a batch that can never succeed; it is
	// dead-lettered with Err as the reason.
	Reject = message.Reject
)

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

// AppendHandler is a [Handler] that appends its outputs to a slice the
// runtime owns instead of returning one of its own, so that the records
// of a bulk message cost no slice (and no copy of the record) each. The
// runtime calls HandleAppend instead of Handle when a handler has it; on
// an error it ignores what was appended. rec is valid during the call
// only.
type AppendHandler interface {
	Handler
	HandleAppend(ctx context.Context, rec *Record, out []Output) ([]Output, error)
}

// BatchHandler processes records in batches: the shape of a sink such as
// the aggregator, which commits many records at once. Its messages are
// settled only after HandleBatch returns: nil acks every message (after
// dead-lettering the rejected records); an error retries every message of
// the batch. Like Handler, it runs on one goroutine per worker.
type BatchHandler interface {
	HandleBatch(ctx context.Context, batch []Record) (rejected []Reject, err error)
}

// Passthrough is the handler of a step that forwards every record
// unchanged to the step's output subject for the record's dataset.
func Passthrough(outSubject string) Handler { return passthrough(outSubject) }

type passthrough string

func (p passthrough) Handle(ctx context.Context, rec Record) ([]Output, error) {
	return p.HandleAppend(ctx, &rec, nil)
}

func (p passthrough) HandleAppend(_ context.Context, rec *Record, out []Output) ([]Output, error) {
	return append(out, Output{Subject: string(p), Data: rec.Data}), nil
}

// recordHandler adapts a Handler to the chain: each record of the batch in
// turn, its outputs to its delivery, a permanent failure to the batch's
// rejects; the first transient failure ends the batch with its error.
//
// The outputs of each delivery go to one slice the adapter reuses: the
// settler publishes them before the fetch loop takes the next message,
// and then drops them (see settler.settle). An AppendHandler gets each
// record in one variable: a bulk message's records cost no copy each.
func recordHandler(h Handler) message.HandlerFunc {
	ah, _ := h.(AppendHandler)
	var outputs []Output
	return func(ctx context.Context, b *message.Batch) error {
		for _, d := range b.Deliveries {
			if len(b.Deliveries) == 1 {
				d.Outputs = slices.Grow(outputs[:0], len(d.Lines))
			}
			rec := d.Proto
			for i, line := range d.Lines {
				rec.Data, rec.Index = line, i
				var err error
				if ah != nil {
					var out []Output
					if out, err = ah.HandleAppend(ctx, &rec, d.Outputs); err == nil {
						d.Outputs = out
					}
				} else {
					var out []Output
					if out, err = h.Handle(ctx, rec); err == nil {
						d.Outputs = append(d.Outputs, out...)
					}
				}
				if err == nil {
					continue
				}
				if !message.IsPermanent(err) {
					return err
				}
				b.Rejects = append(b.Rejects, Reject{Index: d.First + i, Err: err})
			}
			if len(b.Deliveries) == 1 {
				outputs = d.Outputs
			}
		}
		return nil
	}
}

// batchHandler adapts a BatchHandler to the chain.
func batchHandler(h BatchHandler) message.HandlerFunc {
	return func(ctx context.Context, b *message.Batch) error {
		rejected, err := h.HandleBatch(ctx, b.Records())
		b.Rejects = append(b.Rejects, rejected...)
		return err
	}
}
