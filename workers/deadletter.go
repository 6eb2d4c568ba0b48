package workers

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// publishDeadLetters sends a delivery's dead letters: each with the
// original's subject, stream, sequence, id, delivery count, consumer,
// failing step and worker, and the reason (docs/wire.md).
func (w *Worker) publishDeadLetters(p *pending) error {
	d := p.d
	for _, dl := range d.Dead {
		if dl.Index < 0 {
			w.log.Warn().Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Str("reason", dl.Reason).Msg("dead-lettered after max deliveries")
		} else {
			w.log.Debug().Uint64("seq", d.Meta.Sequence.Stream).Int("record", dl.Index).Str("trace_id", traceOf(d)).Str("reason", dl.Reason).Msg("dead-lettered")
		}
		m := w.deadLetterMsg(d, dl)
		if subjects.FitDeadLetter(m, w.dlqLimit) {
			w.log.Warn().Uint64("seq", d.Meta.Sequence.Stream).Int("record", dl.Index).Str("size", m.Header.Get(subjects.HeaderOrigSize)).
				Msg("dead letter truncated to fit the max payload; the original stays in its stream")
		}
		f, err := w.js.PublishMsgAsync(m, w.stall)
		if err != nil {
			return fmt.Errorf("publish dead letter: %w", err)
		}
		p.futures = append(p.futures, f)
	}
	return nil
}

// giveUp dead-letters a delivery whole after its last allowed delivery
// failed with err, and terminates it once the dead letter is stored. It
// reports whether it did; if the dead letter could not be stored either,
// the delivery is left to the caller (the supervisor copies it once the
// server gives up on it). Records of a bulk message with dead letters of
// their own (p.own) are stored first and left out of the whole one, so
// that every record is dead-lettered once.
func (w *Worker) giveUp(ctx context.Context, d *message.Delivery, err error, p *pending) bool {
	pctx, cancel := context.WithTimeout(ctx, w.cfg.PublishTimeout)
	defer cancel()
	reason := fmt.Sprintf("gave up after %d deliveries: %v", d.Meta.NumDelivered, err)
	body, own := d.Msg.Data(), 0
	if len(p.own) > 0 {
		if rest, ok := w.storeOwnDeadLetters(pctx, d, p.own); ok {
			body, own = rest, len(p.own)
			reason += fmt.Sprintf(" (%d of its records dead-lettered on their own)", own)
		}
	}
	records := 0 // what the whole dead letter holds
	if len(body) > 0 {
		m := w.deadLetterMsg(d, message.DeadLetter{Index: -1, Data: body, Reason: reason})
		records = 1
		if d.Bulk {
			records, _ = strconv.Atoi(m.Header.Get(subjects.HeaderRecords))
		}
		subjects.FitDeadLetter(m, w.dlqLimit)
		if _, perr := w.js.PublishMsg(pctx, m); perr != nil {
			w.log.Warn().Err(perr).Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Msg("dead letter after max deliveries not stored; the supervisor copies the message")
			return false
		}
	}
	if own > 0 && !p.ownCounted {
		w.stats.deadLettered.Add(int64(own))
	}
	w.log.Warn().Uint64("seq", d.Meta.Sequence.Stream).Str("trace_id", traceOf(d)).Str("reason", reason).Msg("dead-lettered after max deliveries")
	if terr := d.Msg.TermWithReason(subjects.CleanReason(subjects.TermReasonDeadLettered + reason)); terr != nil {
		w.log.Warn().Err(terr).Uint64("seq", d.Meta.Sequence.Stream).Msg("term")
		return true // the dead letter is stored; a redelivery stores it once
	}
	w.stats.deadLettered.Add(int64(records))
	w.stats.acked.Add(1)
	return true
}

// storeOwnDeadLetters stores the dead letters of single records of a bulk
// delivery (again: their ids make a second copy a duplicate the server
// drops) and returns the message's other records as its whole dead
// letter's body. ok is false when one could not be stored.
func (w *Worker) storeOwnDeadLetters(ctx context.Context, d *message.Delivery, own []message.DeadLetter) (rest []byte, ok bool) {
	skip := make(map[int]bool, len(own))
	for _, dl := range own {
		m := w.deadLetterMsg(d, dl)
		subjects.FitDeadLetter(m, w.dlqLimit)
		if _, err := w.js.PublishMsg(ctx, m); err != nil {
			w.log.Warn().Err(err).Uint64("seq", d.Meta.Sequence.Stream).Int("record", dl.Index).Msg("dead letter of a record not stored; the whole message's dead letter keeps it")
			return nil, false
		}
		skip[dl.Index] = true
	}
	records, _ := subjects.SplitBulk(d.Msg.Headers(), d.Msg.Data())
	kept := records[:0:0]
	for i, r := range records {
		if !skip[i] {
			kept = append(kept, r)
		}
	}
	if len(kept) == 0 {
		return nil, true
	}
	return append(subjects.JoinBulk(kept), '\n'), true
}

// deadRecords counts the records a delivery dead-letters: all of them
// with a whole-message dead letter.
func deadRecords(d *message.Delivery) int64 {
	if len(d.Dead) == 1 && d.Dead[0].Index < 0 {
		return int64(len(d.Lines))
	}
	return int64(len(d.Dead))
}

func (w *Worker) deadLetterMsg(d *message.Delivery, dl message.DeadLetter) *nats.Msg {
	m := &nats.Msg{Subject: subjects.DeadLetter(w.cfg.Step.Name, w.cfg.Dataset), Data: dl.Data, Header: nats.Header{}}
	step := subjects.DeadLetterStep(w.cfg.Step.Name, w.cfg.Dataset)
	var id string
	if dl.Index < 0 {
		id = subjects.WholeDeadLetterMsgID(d.ID, step, d.Bulk)
	} else {
		id = subjects.DeadLetterMsgID(d.ID, step, dl.Index)
	}
	m.Header.Set(subjects.HeaderMsgID, id)
	m.Header.Set(subjects.HeaderOrigSubject, d.Msg.Subject())
	m.Header.Set(subjects.HeaderOrigStream, d.Meta.Stream)
	m.Header.Set(subjects.HeaderOrigSeq, strconv.FormatUint(d.Meta.Sequence.Stream, 10))
	m.Header.Set(subjects.HeaderOrigMsgID, d.ID)
	m.Header.Set(subjects.HeaderDeliveries, strconv.FormatUint(d.Meta.NumDelivered, 10))
	m.Header.Set(subjects.HeaderConsumer, d.Meta.Consumer)
	m.Header.Set(subjects.HeaderStep, w.cfg.Step.Name)
	m.Header.Set(subjects.HeaderWorker, w.cfg.ID)
	m.Header.Set(subjects.HeaderReason, subjects.CleanReason(dl.Reason))
	m.Header.Set(subjects.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	if d.Bulk && dl.Index >= 0 {
		m.Header.Set(subjects.HeaderRecordIndex, strconv.Itoa(dl.Index))
	}
	if d.Bulk && dl.Index < 0 {
		// Counted in the body, not d.Lines: the settler's goroutine gives
		// up on deliveries whose lines the fetch loop has dropped.
		records := 0
		for data := dl.Data; len(data) > 0; {
			var line []byte
			if line, data = subjects.NextLine(data); line != nil {
				records++
			}
		}
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
	}
	if tp := d.Msg.Headers().Get(subjects.HeaderTraceParent); tp != "" {
		m.Header.Set(subjects.HeaderTraceParent, tp)
	}
	return m
}
