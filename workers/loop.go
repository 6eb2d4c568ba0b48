package workers

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// BatchHandler processes records in batches: the shape of a sink such as
// the aggregator, which commits many records at once. Its messages are
// settled only after HandleBatch returns: nil acks every message (after
// dead-lettering the rejected records); an error retries every message of
// the batch. Like Handler, it runs on one goroutine per worker.
type BatchHandler interface {
	HandleBatch(ctx context.Context, batch []Record) (rejected []Reject, err error)
}

// Reject is a record of a batch that can never succeed; it is
// dead-lettered with Err as the reason.
type Reject struct {
	Index int // index into the batch
	Err   error
}

// handlerSet holds the handler of either kind a worker runs.
type handlerSet struct {
	rec   Handler
	batch BatchHandler
}

func (w *Worker) newHandler() (handlerSet, error) {
	if w.cfg.NewBatchHandlerFunc != nil {
		h, err := w.cfg.NewBatchHandlerFunc()
		return handlerSet{batch: h}, err
	}
	h, err := w.cfg.NewHandlerFunc()
	return handlerSet{rec: h}, err
}

// pullExpiry is the shortest life of one pull request (at least three
// heartbeats, as the client requires).
const pullExpiry = 5 * time.Second

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

// dispatch hands one fetched message to the handler; a batch handler gets
// it together with whatever else the iterator already holds.
func (w *Worker) dispatch(ctx context.Context, h handlerSet, first jetstream.Msg, it jetstream.MessagesContext, ackQueue chan<- *pending) *PanicError {
	if h.batch == nil {
		return w.process(ctx, h.rec, first, ackQueue)
	}
	// The batch closes when full or BatchWait after its first message,
	// whichever comes first: a steady trickle must not hold records back
	// until a whole batch has gathered.
	msgs := []jetstream.Msg{first}
	deadline := time.Now().Add(w.cfg.BatchWait)
	for len(msgs) < w.cfg.FetchBatch {
		wait := time.Until(deadline)
		if wait <= 0 {
			break
		}
		m, err := it.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return w.processBatch(ctx, h.batch, msgs, ackQueue)
}

// inbound is one fetched message taken apart.
type inbound struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	id      string
	records [][]byte
	bulk    bool
	first   int // index of its first record in the batch
}

func (w *Worker) unpack(msg jetstream.Msg) (*inbound, bool) {
	w.stats.messages.Add(1)
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream delivery: nothing to ack, nothing to redeliver.
		w.log.Error().Err(err).Str("subject", msg.Subject()).Msg("message without JetStream metadata")
		return nil, false
	}
	if meta.NumDelivered > 1 {
		w.stats.redelivered.Add(1)
	}
	id := msg.Headers().Get(subjects.HeaderMsgID)
	if id == "" {
		id = subjects.SequenceMsgID(meta.Stream, meta.Sequence.Stream)
	}
	records, bulk := SplitBulk(msg.Headers(), msg.Data())
	return &inbound{msg: msg, meta: meta, id: id, records: records, bulk: bulk}, true
}

func (in *inbound) record(i int) Record {
	return Record{
		Data: in.records[i], Subject: in.msg.Subject(), Header: in.msg.Headers(),
		Index: i, Bulk: in.bulk, Seq: in.meta.Sequence.Stream, MsgID: in.id,
		Delivered: in.meta.NumDelivered, Published: in.meta.Timestamp,
	}
}

func (w *Worker) processBatch(ctx context.Context, h BatchHandler, msgs []jetstream.Msg, ackQueue chan<- *pending) *PanicError {
	ins := make([]*inbound, 0, len(msgs))
	var batch []Record
	for _, m := range msgs {
		in, ok := w.unpack(m)
		if !ok {
			continue
		}
		in.first = len(batch)
		for i := range in.records {
			batch = append(batch, in.record(i))
		}
		ins = append(ins, in)
	}
	hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	rejected, err := w.callBatch(hctx, h, batch)
	if err != nil {
		w.setLastErr(err)
		for _, in := range ins {
			w.retry(ctx, in.msg, in.meta, in.id, in.records, in.bulk, err, ackQueue)
		}
		var pe *PanicError
		if errors.As(err, &pe) {
			return pe
		}
		return nil
	}
	byMsg := map[int][]deadLetter{}
	for _, r := range rejected {
		if r.Index < 0 || r.Index >= len(batch) {
			continue
		}
		for k := len(ins) - 1; k >= 0; k-- {
			if ins[k].first <= r.Index {
				i := r.Index - ins[k].first
				byMsg[k] = append(byMsg[k], deadLetter{index: i, data: ins[k].records[i], reason: r.Err.Error()})
				break
			}
		}
	}
	w.stats.records.Add(int64(len(batch) - len(rejected)))
	for k, in := range ins {
		p := &pending{msg: in.msg, meta: in.meta}
		dead := byMsg[k]
		ok := true
		for _, d := range dead {
			f, err := w.publishDeadLetter(in.msg, in.meta, in.id, in.msg.Headers(), d, in.bulk)
			if err != nil {
				w.nakAfterPublishError(p, err)
				ok = false
				break
			}
			p.futures = append(p.futures, f)
		}
		if !ok {
			continue
		}
		if len(dead) > 0 && !in.bulk {
			p.action, p.reason = actionTerm, termReasonDeadLettered+dead[0].reason
		}
		w.stats.deadLettered.Add(int64(len(dead)))
		w.enqueue(ctx, p, ackQueue)
	}
	return nil
}

func (w *Worker) callBatch(ctx context.Context, h BatchHandler, batch []Record) (rejected []Reject, err error) {
	start := time.Now()
	defer func() {
		w.handlerSeconds.Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.HandleBatch(ctx, batch)
}
