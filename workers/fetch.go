package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// pullExpiry is the shortest life of one pull request (at least three
// heartbeats, as the client requires).
const pullExpiry = 5 * time.Second

// fetchLoop takes messages from the consumer until ctx is cancelled and
// the iterator drained: each message (or, for a batch handler, each batch
// of messages) goes through the router and then to the settler. A
// crashed handler is rebuilt after a backoff; too many crashes in the
// restart window end the loop with ErrTooManyRestarts.
func (w *Worker) fetchLoop(ctx, hardCtx context.Context, cons jetstream.Consumer, r *router, s *settler) error {
	restarts := backoff.Window{Max: w.cfg.MaxRestarts, Period: w.cfg.RestartWindow}
	b := &message.Batch{}
	for {
		if w.paused.Load() && ctx.Err() == nil {
			if err := w.pause(ctx, cons); err != nil {
				return err
			}
			continue
		}
		it := w.currentIter()
		msg, err := it.Next()
		if err != nil {
			switch {
			case errors.Is(err, jetstream.ErrMsgIteratorClosed):
				if w.paused.Load() && ctx.Err() == nil {
					continue // closed by Pause: wait for Resume
				}
				return nil
			case errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound):
				return fmt.Errorf("consumer %s: %w", w.consumer, err)
			case errors.Is(err, jetstream.ErrNoHeartbeat):
				// Missed heartbeats and reconnects: the iterator recovers.
				w.log.Warn().Err(err).Msg("pull not confirmed by the server (consumer leader moved or connection lost); pulling again")
			default:
				w.log.Warn().Err(err).Msg("fetch")
			}
			continue
		}
		w.gather(b, msg, it, r.batch)
		if len(b.Deliveries) == 0 {
			continue
		}
		err = r.handle(hardCtx, b)
		if err != nil {
			w.setLastErr(err)
		}
		s.settle(hardCtx, b)
		var crash *PanicError
		if !errors.As(err, &crash) {
			continue
		}
		n := w.stats.crashes.Add(1)
		w.log.Error().Str("panic", fmt.Sprint(crash.Value)).Bytes("stack", crash.Stack).Int64("crashes", n).Msg("handler crashed; restarting it")
		if !restarts.Add(time.Now()) {
			return fmt.Errorf("%w: %d crashes within %s, last: %v", ErrTooManyRestarts, w.cfg.MaxRestarts, w.cfg.RestartWindow, crash)
		}
		if !backoff.Sleep(ctx, backoff.Delay(w.cfg.RestartBackoffMin, w.cfg.RestartBackoffMax, restarts.Recent())) {
			continue // stopping: the drain path takes over
		}
		if r, err = w.newRouter(); err != nil {
			return fmt.Errorf("rebuild: %w", err)
		}
	}
}

// gather makes b the batch of first: first alone for a record handler;
// for a batch handler first and whatever else the iterator holds, until
// the batch is full (FetchBatch) or BatchWait after first, whichever
// comes first, so a steady trickle is not held back until a whole batch
// has gathered.
func (w *Worker) gather(b *message.Batch, first jetstream.Msg, it jetstream.MessagesContext, batch bool) {
	b.Deliveries, b.Rejects = b.Deliveries[:0], b.Rejects[:0]
	// The deliveries' lines share one buffer, which the last batch is
	// done with: the settler dropped its lines once it had published.
	clear(w.lines)
	w.lines = w.lines[:0]
	w.unpack(b, first)
	if !batch {
		return
	}
	deadline := time.Now().Add(w.cfg.BatchWait)
	for n := 1; n < w.cfg.FetchBatch; n++ {
		wait := time.Until(deadline)
		if wait <= 0 {
			return
		}
		m, err := it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			return
		}
		w.unpack(b, m)
	}
}

// unpack adds a message to b as a delivery: its records are the NDJSON
// lines of a bulk message, the body of any other, aliasing the message's
// data.
func (w *Worker) unpack(b *message.Batch, msg jetstream.Msg) {
	w.stats.messages.Add(1)
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to ack, nothing to redeliver.
		w.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata")
		return
	}
	if meta.NumDelivered > 1 {
		w.stats.redelivered.Add(1)
	}
	header := msg.Headers()
	id := header.Get(subjects.HeaderMsgID)
	if id == "" {
		id = subjects.SequenceMsgID(meta.Stream, meta.Sequence.Stream)
	}
	n, bulk := subjects.BulkRecords(header)
	d := &message.Delivery{
		Msg: msg, Meta: meta, ID: id, Bulk: bulk, First: b.Len(),
		Proto: Record{
			Subject: msg.Subject(), Header: header, Bulk: bulk, Seq: meta.Sequence.Stream, MsgID: id,
			Delivered: meta.NumDelivered, Published: meta.Timestamp,
		},
	}
	if !bulk {
		d.SetBody(msg.Data())
	} else {
		if n > 0 && n <= 1<<20 {
			w.lines = slices.Grow(w.lines, n)
		}
		start := len(w.lines)
		for data := msg.Data(); len(data) > 0; {
			var line []byte
			if line, data = subjects.NextLine(data); line != nil {
				w.lines = append(w.lines, line)
			}
		}
		d.Lines = w.lines[start:len(w.lines):len(w.lines)]
	}
	b.Deliveries = append(b.Deliveries, d)
}

func (w *Worker) openIter(cons jetstream.Consumer) error {
	// A short pull expiry with idle heartbeats bounds how long a pull the
	// server lost or never answered (heavy load), or one parked on a
	// consumer leader that died with its cluster node, can stall the
	// worker: two missed heartbeats and the client pulls anew, instead of
	// after the default 30s.
	//
	// The client buffers a pull's messages in a channel as large as one
	// pull, and drops what does not fit as a slow consumer. After missed
	// heartbeats it pulls anew while the server may still answer the old
	// pull (a CPU-starved process misses them), so pulls of FetchBatch
	// overflowed it: the dropped messages then held the consumer's ack
	// window until their AckWait ran out, and in a 1,500 records/s soak
	// the validate step fell 570,000 messages behind after a minute of
	// starvation. The server
	// never has more than the consumer's MaxAckPending messages out, so a
	// buffer that large cannot overflow; batches are still cut at
	// FetchBatch by the loop.
	pull := w.cfg.FetchBatch
	if info := cons.CachedInfo(); info != nil {
		pull = max(pull, info.Config.MaxAckPending)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(pull),
		jetstream.PullExpiry(max(pullExpiry, 3*w.cfg.PullHeartbeat)), jetstream.PullHeartbeat(w.cfg.PullHeartbeat))
	if err != nil {
		return fmt.Errorf("consume %s: %w", w.consumer, err)
	}
	w.iterMu.Lock()
	w.iter = it
	w.iterMu.Unlock()
	return nil
}

func (w *Worker) currentIter() jetstream.MessagesContext {
	w.iterMu.Lock()
	defer w.iterMu.Unlock()
	return w.iter
}

func (w *Worker) drainIter() {
	if it := w.currentIter(); it != nil {
		it.Drain()
	}
}

func (w *Worker) stopIter() {
	if it := w.currentIter(); it != nil {
		it.Stop()
	}
}

// Pause stops fetching: the worker finishes what it holds and then waits
// for Resume, holding no messages, so nothing is redelivered meanwhile.
func (w *Worker) Pause() {
	if w.paused.Swap(true) {
		return
	}
	w.log.Info().Msg("pausing")
	w.drainIter()
}

// Resume lets a paused worker fetch again.
func (w *Worker) Resume() {
	if !w.paused.Swap(false) {
		return
	}
	w.log.Info().Msg("resuming")
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Paused reports whether the worker is paused.
func (w *Worker) Paused() bool { return w.paused.Load() }

// pause waits, with the iterator closed, until Resume or ctx is done.
func (w *Worker) pause(ctx context.Context, cons jetstream.Consumer) error {
	w.setState(subjects.StatePaused)
	for w.paused.Load() {
		select {
		case <-ctx.Done():
			return nil
		case <-w.wake:
		}
	}
	if err := w.openIter(cons); err != nil {
		return err
	}
	w.setState(subjects.StateRunning)
	return nil
}
