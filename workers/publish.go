package workers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unsafe"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// publishOutputs sends a delivery's outputs (see eachOutput).
func (w *Worker) publishOutputs(p *pending) error {
	return w.eachOutput(p.d, func(subject string, data []byte, id string, records int) error {
		return w.publish(p, subject, data, id, p.d.TraceParent, records)
	})
}

// eachOutput calls send with each message a delivery's outputs make, each
// with a message id derived from the delivery's. In record mode each
// output is its own message; in bulk mode outputs are grouped per subject
// (or Group) into one bulk message each (records > 0), in first-seen
// order; an output with its own MsgID is always a message of its own.
func (w *Worker) eachOutput(d *message.Delivery, sendFunc func(subject string, data []byte, id string, records int) error) error {
	if len(d.Outputs) == 0 {
		return nil
	}
	if !d.Bulk {
		for i := range d.Outputs {
			o := &d.Outputs[i]
			id := o.MsgID
			if id == "" {
				id = subjects.DeriveMsgID(d.ID, w.cfg.Step.Name, i)
			}
			if err := sendFunc(o.Subject, o.Data, id, 0); err != nil {
				return err
			}
		}
		return nil
	}
	// Outputs are grouped in first-seen order; a delivery has few groups
	// (one subject, or the clean stage's partitions), so a linear search
	// beats a map, and each group's body is built in one allocation, or
	// none when its records lie in order in the input (see joinRecords).
	w.groups, w.groupOf = w.groups[:0], w.groupOf[:0]
	last, own := -1, 0
	for i := range d.Outputs {
		o := &d.Outputs[i]
		if o.MsgID != "" {
			own++
			w.groupOf = append(w.groupOf, -1)
			if err := sendFunc(o.Subject, o.Data, o.MsgID, 0); err != nil {
				return err
			}
			continue
		}
		key, byGroup := o.Subject, o.Group != ""
		if byGroup {
			key = o.Group
		}
		g := last // most often the group of the output before
		if g < 0 || !sameString(w.groups[g].key, key) || w.groups[g].byGroup != byGroup {
			g = slices.IndexFunc(w.groups, func(g outputGroup) bool { return g.byGroup == byGroup && g.key == key })
			if g < 0 {
				g = len(w.groups)
				w.groups = append(w.groups, outputGroup{key: key, byGroup: byGroup, subject: o.Subject})
			}
		}
		last = g
		w.groupOf = append(w.groupOf, g)
	}
	if len(w.groups) == 1 && own == 0 {
		// One message of all outputs (a validate chunk, a chunk passed on).
		return sendFunc(w.groups[0].subject, joinOutputs(d.Outputs), subjects.DeriveMsgID(d.ID, w.cfg.Step.Name, 0), len(d.Outputs))
	}
	for g, grp := range w.groups {
		w.sub = w.sub[:0]
		for i := range d.Outputs {
			if w.groupOf[i] == g {
				w.sub = append(w.sub, d.Outputs[i].Data)
			}
		}
		err := sendFunc(grp.subject, joinRecords(w.sub), subjects.DeriveMsgID(d.ID, w.cfg.Step.Name, g), len(w.sub))
		clear(w.sub) // the scratch must not keep outputs alive
		if err != nil {
			return err
		}
	}
	return nil
}

// sameString is a == b, at once when both are the same string (outputs
// of one handler share their subject).
func sameString(a, b string) bool {
	return len(a) == len(b) && (unsafe.StringData(a) == unsafe.StringData(b) || a == b)
}

// outputGroup is the outputs of a bulk delivery that form one message:
// those of a subject, or of a Group, which go to the subject of its first.
type outputGroup struct {
	key     string
	byGroup bool
	subject string
}

// joinOutputs is joinRecords of the outputs' data.
func joinOutputs(outs []message.Output) []byte {
	first := outs[0].Data
	all := first[:cap(first)]
	end := len(first)
	for i := 1; i < len(outs); i++ {
		r := outs[i].Data
		if len(r) == 0 || end+1+len(r) > len(all) || all[end] != '\n' || &all[end+1] != &r[0] {
			recs := make([][]byte, len(outs))
			for i := range outs {
				recs[i] = outs[i].Data
			}
			return subjects.JoinBulk(recs)
		}
		end += 1 + len(r)
	}
	return all[:end:end]
}

// joinRecords is JoinBulk, except that records lying one after another in
// one buffer, each followed by a single newline (a bulk input passed on
// in order, or with records dropped only at its end), are that part of
// the buffer itself: no copy.
func joinRecords(recs [][]byte) []byte {
	if len(recs) == 0 {
		return nil
	}
	first := recs[0]
	all := first[:cap(first)]
	end := len(first)
	for _, r := range recs[1:] {
		if len(r) == 0 || end+1+len(r) > len(all) || all[end] != '\n' || &all[end+1] != &r[0] {
			return subjects.JoinBulk(recs)
		}
		end += 1 + len(r)
	}
	return all[:end:end]
}

// publish sends one output message asynchronously and adds its pub-ack
// to the delivery's; records > 0 makes it a bulk message.
func (w *Worker) publish(p *pending, subject string, data []byte, id, trace string, records int) error {
	m := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	m.Header.Set(subjects.HeaderMsgID, id)
	if records > 0 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
	}
	m.Header.Set(subjects.HeaderTraceParent, trace)
	f, err := w.js.PublishMsgAsync(m, w.stall)
	if err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	p.futures = append(p.futures, f)
	return nil
}

// await waits until JetStream has stored one output. An output the
// cluster did not take because it was between leaders (no response from
// the stream, a publish lost with a dying node, a connection coming back)
// is published again with its same message id, for up to RepublishFor,
// while the input is kept in progress: a leader election must not use up
// the input's deliveries and send a good record to the dead-letter stream.
func (w *Worker) await(ctx context.Context, d *message.Delivery, f jetstream.PubAckFuture) error {
	var (
		deadline time.Time
		// The first retry goes at once: most failures are old news (the
		// connection dropped and is back) by the time the settler sees them.
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
				ev, msg := w.log.Warn(), "output not stored (cluster election or reconnect?); publishing it again"
				if MsgIDInProcess(err) { // a redelivered input's output right behind the first
					ev, msg = w.log.Debug(), "output's id is being stored by another publish; asking again"
				}
				ev.Err(err).Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Msg(msg)
			}
			if time.Now().After(deadline) {
				return err
			}
			_ = d.Msg.InProgress()
			if delay > 0 && !backoff.Sleep(ctx, delay) {
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
// (no stream leader yet, a lost request, a connection being re-made,
// another publish of the same id being stored) from one it refuses for
// good (limits, a bad message).
func transientPublishError(err error) bool {
	return PublishOutcomeUnknown(err) || MsgIDInProcess(err) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}

// PublishOutcomeUnknown reports whether err leaves open whether the
// stream stored the message: the ack timed out or the connection went
// down while it was awaited. Publishing it again with its message id is
// safe; a duplicate ack then may be that first attempt's.
func PublishOutcomeUnknown(err error) bool {
	return errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting)
}

// errCodeMsgIDInProcess is nats-server's JSStreamDuplicateMessageConflict
// (409, err_code 10158); nats.go has no constant for it.
const errCodeMsgIDInProcess jetstream.ErrorCode = 10158

// MsgIDInProcess reports whether err is a replicated stream answering
// "duplicate message id is in process": a message with the same id was
// proposed to the stream's replicas but is not stored yet (a producer
// retry right behind its original, a retry of a publish whose ack was
// lost). It is not a failure: asked again a moment later the stream
// answers with a duplicate ack, or stores the message if that other
// publish failed.
func MsgIDInProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeMsgIDInProcess
}
