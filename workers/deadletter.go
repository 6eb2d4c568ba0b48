package workers

import (
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
	// The whole-message dead letter keeps index 0 in its id: a message is
	// dead-lettered either whole or per record, never both.
	m.Header.Set(subjects.HeaderMsgID, subjects.DeadLetterMsgID(d.ID, subjects.DeadLetterStep(w.cfg.Step.Name, w.cfg.Dataset), max(dl.Index, 0)))
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
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(len(d.Lines)))
	}
	if tp := d.Msg.Headers().Get(subjects.HeaderTraceParent); tp != "" {
		m.Header.Set(subjects.HeaderTraceParent, tp)
	}
	return m
}
