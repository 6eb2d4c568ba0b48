package workers

import (
	"context"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// settler is the one settle path of record and batch handlers alike. The
// fetch loop hands it each handled batch: a nak'ed delivery is nak'ed at
// once; for any other it publishes the delivery's outputs and dead
// letters and queues it. Its own goroutine (run) then acks or terminates
// the queued deliveries, in order, once JetStream has stored everything
// they produced: a crash anywhere loses nothing.
type settler struct {
	w *Worker
	// queue holds every delivery awaiting its pub-acks: sized to what the
	// server lets the worker hold, so the server's window, not this
	// queue, bounds how many records are in flight.
	queue chan *pending
}

// pending is a delivery whose outputs and dead letters are in flight.
type pending struct {
	d       *message.Delivery
	futures []jetstream.PubAckFuture
	// own are the dead letters of single records of a bulk message on its
	// last allowed delivery, kept in case it is dead-lettered whole after
	// all (giveUp); ownCounted says the worker's counters have them.
	own        []message.DeadLetter
	ownCounted bool
}

func newSettler(w *Worker) *settler {
	return &settler{w: w, queue: make(chan *pending, w.cfg.Consumer.MaxAckPending)}
}

// settle carries out the verdict of every delivery of a handled batch.
// What the deliveries produced is published by the time it returns: their
// outputs, lines and dead letters are dropped, the memory of the fetch
// loop and the handler again.
func (s *settler) settle(ctx context.Context, b *message.Batch) {
	for _, d := range b.Deliveries {
		s.deliver(ctx, d)
		d.Outputs, d.Dead, d.Lines = nil, nil, nil
	}
}

// deliver settles one delivery: a nak at once; otherwise its outputs and
// dead letters published and the delivery queued for run.
func (s *settler) deliver(ctx context.Context, d *message.Delivery) {
	w := s.w
	if d.Verdict.Action == message.Nak {
		w.nak(d, d.Verdict.Err, d.Verdict.Delay)
		return
	}
	p := &pending{d: d}
	if d.Bulk && w.lastDelivery(d) {
		for _, dl := range d.Dead {
			if dl.Index >= 0 {
				p.own = append(p.own, dl)
			}
		}
	}
	if err := w.publishOutputs(p); err != nil {
		w.nakAfterPublishError(ctx, p, err)
		return
	}
	if err := w.publishDeadLetters(p); err != nil {
		w.nakAfterPublishError(ctx, p, err)
		return
	}
	w.stats.outputs.Add(int64(len(d.Outputs)))
	w.stats.deadLettered.Add(deadRecords(d))
	p.ownCounted = true
	w.stats.inFlight.Add(1)
	select {
	case s.queue <- p:
	case <-ctx.Done():
		// Hard stop: leave the message unacked; it will be redelivered.
		w.stats.inFlight.Add(-1)
	}
}

// close ends run once the queued deliveries are settled.
func (s *settler) close() { close(s.queue) }

// run acks or terminates queued deliveries, in order, once all their
// publishes are acknowledged.
func (s *settler) run(ctx context.Context) {
	for p := range s.queue {
		s.finish(ctx, p)
		s.w.stats.inFlight.Add(-1)
	}
}

func (s *settler) finish(ctx context.Context, p *pending) {
	w, d := s.w, p.d
	for _, f := range p.futures {
		if err := w.await(ctx, d, f); err != nil {
			if ctx.Err() == nil {
				w.nakAfterPublishError(ctx, p, err)
			} // else hard stop: redelivered later, outputs de-duplicated
			return
		}
	}
	var err error
	if d.Verdict.Action == message.Term {
		// The reason says the worker dead-lettered the message already,
		// so the supervisor does not copy it again.
		err = d.Msg.TermWithReason(subjects.CleanReason(subjects.TermReasonDeadLettered + d.Verdict.Reason))
	} else {
		err = d.Msg.Ack()
	}
	if err != nil {
		w.log.Warn().Err(err).Uint64("seq", d.Meta.Sequence.Stream).Msg("ack")
		return
	}
	w.stats.acked.Add(1)
}

// nak has a delivery redelivered after delay.
func (w *Worker) nak(d *message.Delivery, cause error, delay time.Duration) {
	w.stats.retried.Add(1)
	w.log.Debug().Err(cause).Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Uint64("delivery", d.Meta.NumDelivered).Dur("retry_in", delay).Msg("retrying")
	if err := d.Msg.NakWithDelay(delay); err != nil {
		w.log.Warn().Err(err).Msg("nak")
	}
}

// nakAfterPublishError naks a delivery whose outputs JetStream did not
// take; its redelivery republishes them with the same ids. On its last
// allowed delivery it is dead-lettered whole instead, as a handler's
// transient failure is (docs/wire.md, step 5), so that it does not wait
// for the supervisor's copy: the step knows why it gave up.
func (w *Worker) nakAfterPublishError(ctx context.Context, p *pending, err error) {
	d := p.d
	w.setLastErr(err)
	if w.lastDelivery(d) && w.giveUp(ctx, d, err, p) {
		return
	}
	w.log.Warn().Err(err).Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Msg("publish failed; input will be redelivered")
	w.nak(d, err, w.retryConfig().Delay(err, d.Meta.NumDelivered))
}

// lastDelivery says d is its message's last allowed delivery.
func (w *Worker) lastDelivery(d *message.Delivery) bool {
	return w.maxDeliver > 0 && d.Meta.NumDelivered >= uint64(w.maxDeliver)
}

// traceOf is the trace id a delivery carries, for log lines about it.
func traceOf(d *message.Delivery) string {
	return subjects.TraceID(d.Msg.Headers().Get(subjects.HeaderTraceParent))
}
