package workers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// ackAction is what the acker does with an input once its publishes are
// acknowledged.
type ackAction int

const (
	actionAck ackAction = iota
	actionTerm
)

// pending is one input message whose outputs are in flight.
type pending struct {
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	futures []jetstream.PubAckFuture
	action  ackAction
	reason  string // for Term
}

// process handles one message: every record through the handler, then the
// outputs and dead letters published, then the message queued for the
// acker. It returns the panic of a crashed handler, after settling the
// message.
func (w *Worker) process(ctx context.Context, h Handler, msg jetstream.Msg, ackQueue chan<- *pending) *PanicError {
	in, ok := w.unpack(msg)
	if !ok {
		return nil
	}
	meta, inID, records, bulk, header := in.meta, in.id, in.records, in.bulk, msg.Headers()

	hctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	progressAt := time.Now().Add(w.cfg.Consumer.AckWait / 3)

	var (
		outputs []Output
		dead    []deadLetter
	)
	for i, data := range records {
		out, err := w.call(hctx, h, in.record(i))
		if err == nil {
			outputs = append(outputs, out...)
			continue
		}
		if IsPermanent(err) {
			dead = append(dead, deadLetter{index: i, data: data, reason: err.Error()})
			continue
		}
		// A transient failure of any record retries the whole message:
		// records already handled republish with the same ids and are
		// dropped by the server as duplicates.
		w.setLastErr(err)
		w.retry(ctx, msg, meta, inID, records, bulk, err, ackQueue)
		var pe *PanicError
		if errors.As(err, &pe) {
			return pe
		}
		return nil
	}
	if bulk && time.Now().After(progressAt) {
		_ = msg.InProgress()
	}
	w.stats.records.Add(int64(len(records) - len(dead)))

	p := &pending{msg: msg, meta: meta}
	if err := w.publishOutputs(p, inID, header, outputs, bulk); err != nil {
		w.nakAfterPublishError(p, err)
		return nil
	}
	for _, d := range dead {
		w.log.Debug().Uint64("seq", meta.Sequence.Stream).Int("record", d.index).Str("trace_id", traceOf(msg)).Str("reason", d.reason).Msg("dead-lettered")
		f, err := w.publishDeadLetter(msg, meta, inID, header, d, bulk)
		if err != nil {
			w.nakAfterPublishError(p, err)
			return nil
		}
		p.futures = append(p.futures, f)
	}
	if len(dead) > 0 && len(dead) == len(records) && !bulk {
		p.action, p.reason = actionTerm, termReasonDeadLettered+dead[0].reason
	}
	w.stats.deadLettered.Add(int64(len(dead)))
	w.stats.outputs.Add(int64(len(outputs)))
	w.enqueue(ctx, p, ackQueue)
	return nil
}

// termReasonDeadLettered starts the reason of a Term for a message the
// worker has already dead-lettered, so the supervisor does not copy it again.
const termReasonDeadLettered = subjects.TermReasonDeadLettered

// call runs the handler with panic recovery.
func (w *Worker) call(ctx context.Context, h Handler, rec Record) (out []Output, err error) {
	start := time.Now()
	defer func() {
		w.handlerSeconds.Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h.Handle(ctx, rec)
}

func (w *Worker) enqueue(ctx context.Context, p *pending, ackQueue chan<- *pending) {
	w.stats.inFlight.Add(1)
	select {
	case ackQueue <- p:
	case <-ctx.Done():
		// Hard stop: leave the message unacked; it will be redelivered.
		w.stats.inFlight.Add(-1)
	}
}

// retry settles a message whose handling failed transiently: a Nak with
// backoff, or on its last allowed delivery a dead letter and a Term.
func (w *Worker) retry(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, inID string, records [][]byte, bulk bool, cause error, ackQueue chan<- *pending) {
	if w.maxDeliver > 0 && int(meta.NumDelivered) >= w.maxDeliver {
		reason := fmt.Sprintf("gave up after %d deliveries: %v", meta.NumDelivered, cause)
		d := deadLetter{index: -1, data: msg.Data(), reason: reason, records: len(records)}
		f, err := w.publishDeadLetter(msg, meta, inID, msg.Headers(), d, bulk)
		if err != nil {
			// The server will count this delivery out; the supervisor's
			// max-deliveries advisory path dead-letters it then.
			w.log.Error().Err(err).Uint64("seq", meta.Sequence.Stream).Str("trace_id", traceOf(msg)).Msg("dead letter publish failed")
			w.nak(msg, meta, cause)
			return
		}
		w.stats.deadLettered.Add(int64(len(records)))
		w.log.Warn().Uint64("seq", meta.Sequence.Stream).Str("trace_id", traceOf(msg)).Str("reason", reason).Msg("dead-lettered after max deliveries")
		w.enqueue(ctx, &pending{msg: msg, meta: meta, futures: []jetstream.PubAckFuture{f}, action: actionTerm, reason: termReasonDeadLettered + reason}, ackQueue)
		return
	}
	w.nak(msg, meta, cause)
}

func (w *Worker) nak(msg jetstream.Msg, meta *jetstream.MsgMetadata, cause error) {
	delay := backoff(w.cfg.RetryBackoffMin, w.cfg.RetryBackoffMax, int(meta.NumDelivered))
	var ra *retryAfterError
	if errors.As(cause, &ra) {
		delay = ra.delay
	}
	w.stats.retried.Add(1)
	w.log.Debug().Err(cause).Uint64("seq", meta.Sequence.Stream).Str("trace_id", traceOf(msg)).Uint64("delivery", meta.NumDelivered).Dur("retry_in", delay).Msg("retrying")
	if err := msg.NakWithDelay(delay); err != nil {
		w.log.Warn().Err(err).Msg("nak")
	}
}

func (w *Worker) nakAfterPublishError(p *pending, err error) {
	w.setLastErr(err)
	w.log.Warn().Err(err).Uint64("seq", p.meta.Sequence.Stream).Str("trace_id", traceOf(p.msg)).Msg("publish failed; input will be redelivered")
	w.nak(p.msg, p.meta, err)
}

// publishOutputs sends a message's outputs. In record mode each output is
// its own message; in bulk mode outputs are grouped per subject into one
// bulk message each, in first-seen order.
func (w *Worker) publishOutputs(p *pending, inID string, inHeader nats.Header, outputs []Output, bulk bool) error {
	if len(outputs) == 0 {
		return nil
	}
	trace := childTraceParent(inHeader.Get(subjects.HeaderTraceParent), inID)
	if !bulk {
		for i, o := range outputs {
			m := &nats.Msg{Subject: o.Subject, Data: o.Data, Header: nats.Header{}}
			id := o.MsgID
			if id == "" {
				id = subjects.DeriveMsgID(inID, w.cfg.Step.Name, i)
			}
			m.Header.Set(subjects.HeaderMsgID, id)
			m.Header.Set(subjects.HeaderTraceParent, trace)
			f, err := w.js.PublishMsgAsync(m, w.stall)
			if err != nil {
				return fmt.Errorf("publish %s: %w", o.Subject, err)
			}
			p.futures = append(p.futures, f)
		}
		return nil
	}
	var order []string
	groups := map[string][][]byte{}
	for _, o := range outputs {
		if o.MsgID != "" {
			m := &nats.Msg{Subject: o.Subject, Data: o.Data, Header: nats.Header{}}
			m.Header.Set(subjects.HeaderMsgID, o.MsgID)
			m.Header.Set(subjects.HeaderTraceParent, trace)
			f, err := w.js.PublishMsgAsync(m, w.stall)
			if err != nil {
				return fmt.Errorf("publish %s: %w", o.Subject, err)
			}
			p.futures = append(p.futures, f)
			continue
		}
		if _, ok := groups[o.Subject]; !ok {
			order = append(order, o.Subject)
		}
		groups[o.Subject] = append(groups[o.Subject], o.Data)
	}
	for i, subj := range order {
		recs := groups[subj]
		m := &nats.Msg{Subject: subj, Data: JoinBulk(recs), Header: nats.Header{}}
		m.Header.Set(subjects.HeaderMsgID, subjects.DeriveMsgID(inID, w.cfg.Step.Name, i))
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(len(recs)))
		m.Header.Set(subjects.HeaderTraceParent, trace)
		f, err := w.js.PublishMsgAsync(m, w.stall)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		p.futures = append(p.futures, f)
	}
	return nil
}

// deadLetter is one record (or, with index -1, a whole message) to send to
// the dead-letter stream.
type deadLetter struct {
	index   int
	data    []byte
	reason  string
	records int // records in a whole-message dead letter of a bulk message
}

// maxReasonLen keeps a reason header readable and well under header limits.
const maxReasonLen = 1024

// CleanReason makes an error text safe as a header value: one line, valid
// UTF-8, bounded length.
func CleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxReasonLen {
		s = strings.ToValidUTF8(s[:maxReasonLen], "") + "..."
	}
	return s
}

func (w *Worker) publishDeadLetter(msg jetstream.Msg, meta *jetstream.MsgMetadata, inID string, inHeader nats.Header, d deadLetter, bulk bool) (jetstream.PubAckFuture, error) {
	m := &nats.Msg{Subject: subjects.DeadLetter(w.cfg.Step.Name, w.cfg.Dataset), Data: d.data, Header: nats.Header{}}
	idx := d.index
	if idx < 0 {
		idx = 0
	}
	// The whole-message dead letter keeps index 0 in its id: a message is
	// dead-lettered either whole or per record, never both.
	m.Header.Set(subjects.HeaderMsgID, subjects.DeadLetterMsgID(inID, subjects.DeadLetterStep(w.cfg.Step.Name, w.cfg.Dataset), idx))
	m.Header.Set(subjects.HeaderOrigSubject, msg.Subject())
	m.Header.Set(subjects.HeaderOrigStream, meta.Stream)
	m.Header.Set(subjects.HeaderOrigSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	m.Header.Set(subjects.HeaderOrigMsgID, inID)
	m.Header.Set(subjects.HeaderDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	m.Header.Set(subjects.HeaderConsumer, meta.Consumer)
	m.Header.Set(subjects.HeaderStep, w.cfg.Step.Name)
	m.Header.Set(subjects.HeaderWorker, w.cfg.ID)
	m.Header.Set(subjects.HeaderReason, CleanReason(d.reason))
	m.Header.Set(subjects.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if bulk && d.index >= 0 {
		m.Header.Set(subjects.HeaderRecordIndex, strconv.Itoa(d.index))
	}
	if bulk && d.index < 0 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(d.records))
	}
	if tp := inHeader.Get(subjects.HeaderTraceParent); tp != "" {
		m.Header.Set(subjects.HeaderTraceParent, tp)
	}
	f, err := w.js.PublishMsgAsync(m, w.stall)
	if err != nil {
		return nil, fmt.Errorf("publish dead letter: %w", err)
	}
	return f, nil
}

// acker settles inputs in order once all their publishes are acknowledged.
func (w *Worker) acker(ctx context.Context, queue <-chan *pending) {
	for p := range queue {
		w.settle(ctx, p)
		w.stats.inFlight.Add(-1)
	}
}

func (w *Worker) settle(ctx context.Context, p *pending) {
	for _, f := range p.futures {
		if err := w.await(ctx, p, f); err != nil {
			if ctx.Err() == nil {
				w.nakAfterPublishError(p, err)
			} // else hard stop: redelivered later, outputs de-duplicated
			return
		}
	}
	var err error
	if p.action == actionTerm {
		err = p.msg.TermWithReason(CleanReason(p.reason))
	} else {
		err = p.msg.Ack()
	}
	if err != nil {
		w.log.Warn().Err(err).Uint64("seq", p.meta.Sequence.Stream).Msg("ack")
		return
	}
	w.stats.acked.Add(1)
}

// await waits until JetStream has stored one output. An output the
// cluster did not take because it was between leaders (no response from
// the stream, a publish lost with a dying node, a connection coming back)
// is published again with its same message id, for up to RepublishFor,
// while the input is kept in progress: a leader election must not use up
// the input's deliveries and send a good record to the dead-letter stream.
func (w *Worker) await(ctx context.Context, p *pending, f jetstream.PubAckFuture) error {
	var (
		deadline time.Time
		// The first retry goes at once: most failures are old news (the
		// connection dropped and is back) by the time the acker sees them.
		delay time.Duration
	)
	for {
		var err error
		select {
		case <-f.Ok():
			return nil
		case err = <-f.Err():
		case <-ctx.Done():
			return ctx.Err()
		}
		for {
			if !transientPublishError(err) {
				return err
			}
			if deadline.IsZero() {
				deadline = time.Now().Add(w.cfg.RepublishFor)
				w.log.Warn().Err(err).Uint64("seq", p.meta.Sequence.Stream).Str("trace_id", traceOf(p.msg)).Msg("output not stored (cluster election or reconnect?); publishing it again")
			}
			if time.Now().After(deadline) {
				return err
			}
			_ = p.msg.InProgress()
			if delay > 0 && !sleepCtx(ctx, delay) {
				return ctx.Err()
			}
			delay = min(max(2*delay, 100*time.Millisecond), 2*time.Second)
			w.stats.republished.Add(1)
			if f, err = w.js.PublishMsgAsync(f.Msg(), w.stall); err == nil {
				break
			}
		}
	}
}

// transientPublishError tells a publish the cluster may take on a retry
// (no stream leader yet, a lost request, a connection being re-made)
// from one it refuses for good (limits, a bad message).
func transientPublishError(err error) bool {
	return errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}

// childTraceParent continues the W3C trace of the input, or starts one
// derived from the input's id so a redelivery carries the same trace.
func childTraceParent(parent, inID string) string {
	sum := sha256.Sum256([]byte(inID))
	span := hex.EncodeToString(sum[16:24])
	if len(parent) == 55 && parent[2] == '-' && parent[35] == '-' && parent[52] == '-' {
		return parent[:36] + span + parent[52:]
	}
	return "00-" + hex.EncodeToString(sum[:16]) + "-" + span + "-01"
}

// TraceID returns the trace id of a traceparent header, "" if malformed.
func TraceID(traceparent string) string {
	if len(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	return ""
}

// traceOf is the trace id a message carries, for log lines about it.
func traceOf(msg jetstream.Msg) string {
	return TraceID(msg.Headers().Get(subjects.HeaderTraceParent))
}
