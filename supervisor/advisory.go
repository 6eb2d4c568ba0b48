package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// advisory is the part of JetStream's max-deliveries and terminated
// advisories the supervisor uses.
type advisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
	Reason     string `json:"reason,omitempty"`
}

// consumeAdvisories handles the advisories JF_ADVISORIES captured, those
// published while no supervisor ran included: an advisory is acked once
// its message is dead-lettered (or needs no dead letter), and delivered
// again with a growing delay while that fails.
func (s *Supervisor) consumeAdvisories(ctx context.Context, cons jetstream.Consumer) (jetstream.ConsumeContext, error) {
	maxPrefix := strings.TrimSuffix(subjects.AdvisoryMaxDeliveries, ">")
	return cons.Consume(func(m jetstream.Msg) {
		var a advisory
		if err := json.Unmarshal(m.Data(), &a); err != nil {
			s.log.Warn().Err(err).Str("subject", m.Subject()).Msg("undecodable advisory; dropped")
			_ = m.Term()
			return
		}
		retry := false
		delay := time.Second
		if meta, merr := m.Metadata(); merr == nil {
			retry = meta.NumDelivered > 1
			delay = min(time.Second<<min(meta.NumDelivered, 6), time.Minute)
		}
		if err := s.onAdvisory(ctx, a, strings.HasPrefix(m.Subject(), maxPrefix), retry); err != nil {
			_ = m.NakWithDelay(delay)
			return
		}
		_ = m.Ack()
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		s.log.Debug().Err(err).Msg("advisories")
	}))
}

// onAdvisory copies a message JetStream gave up on to the dead-letter
// stream, unless its worker dead-lettered it already. An error means it
// should be tried again; meanwhile the message is marked lost (in no
// stream, mart or dead letter) for status, until a retry succeeds.
func (s *Supervisor) onAdvisory(ctx context.Context, a advisory, maxDeliveries, retry bool) error {
	if !slices.Contains(subjects.StageStreams, a.Stream) {
		return nil
	}
	step, dataset, ok := subjects.ParseConsumerName(a.Consumer)
	if !ok {
		return nil
	}
	cause := "terminated"
	if maxDeliveries {
		cause = "max_deliveries"
	} else if strings.HasPrefix(a.Reason, subjects.TermReasonDeadLettered) {
		return nil // the worker wrote the dead letter before terminating
	}
	log := s.log.With().Str("stream", a.Stream).Uint64("seq", a.StreamSeq).Str("consumer", a.Consumer).Str("cause", cause).Logger()
	s.mu.Lock()
	note := s.lastErr[a.Consumer]
	s.mu.Unlock()
	var reason string
	if maxDeliveries {
		reason = fmt.Sprintf("max deliveries (%d) reached", a.Deliveries)
	} else {
		reason = "terminated"
		if a.Reason != "" {
			reason += ": " + a.Reason
		}
	}
	if note.err != "" {
		reason += "; last error reported by " + note.worker + ": " + note.err
	} else {
		reason += "; no error reported by the step's workers"
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	seq, trace, err := s.copyDeadLetter(wctx, a, step, dataset, note.worker, reason)
	if err != nil {
		s.metrics.deadLetterErrors.Inc()
		lost := LostMessage{Stream: a.Stream, Seq: a.StreamSeq, Step: step, Dataset: dataset, Consumer: a.Consumer, At: time.Now().UTC()}
		what := "terminated"
		if maxDeliveries {
			what = fmt.Sprintf("ran out of deliveries (%d)", a.Deliveries)
		}
		lost.Reason = fmt.Sprintf("%s and could not be dead-lettered: %v", what, err)
		if orig, gerr := getMsg(wctx, s.js, a.Stream, a.StreamSeq); gerr == nil {
			lost.Subject = orig.Subject
			lost.Records = 1
			if n, perr := strconv.ParseInt(orig.Header.Get(subjects.HeaderRecords), 10, 64); perr == nil && n > 0 {
				lost.Records = n
			}
		}
		s.markLost(wctx, lost)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// Expired or deleted: no retry brings it back.
			log.Error().Err(err).Msg("could not dead-letter a message JetStream gave up on; it is gone")
			return nil
		}
		log.Error().Err(err).Msg("could not dead-letter a message JetStream gave up on; retrying")
		return err
	}
	if retry {
		s.unmarkLost(wctx, a.Stream, a.StreamSeq)
	}
	s.metrics.deadLettered.WithLabelValues(step, dataset, cause).Inc()
	log.Warn().Uint64("dlq_seq", seq).Str("trace_id", trace).Str("reason", reason).Msg("dead-lettered")
	s.publishEvent(Event{Kind: EventDeadLetter, Step: step, Dataset: dataset, Stream: a.Stream, Seq: a.StreamSeq, Reason: reason})
	return nil
}

// copyDeadLetter fetches the original message by stream sequence and
// publishes it to jf.dlq.<step>.<dataset> with the dead-letter headers.
// Its id is the one the worker would have used, so a message
// dead-lettered by both is stored once.
func (s *Supervisor) copyDeadLetter(ctx context.Context, a advisory, step, dataset, worker, reason string) (seq uint64, traceID string, err error) {
	orig, err := getMsg(ctx, s.js, a.Stream, a.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, "", fmt.Errorf("%s seq %d is gone from the stream (expired or purged): %w", a.Stream, a.StreamSeq, err)
	}
	if err != nil {
		return 0, "", fmt.Errorf("get %s seq %d: %w", a.Stream, a.StreamSeq, err)
	}
	origID := orig.Header.Get(subjects.HeaderMsgID)
	if origID == "" {
		origID = subjects.SequenceMsgID(a.Stream, a.StreamSeq)
	}
	m := &nats.Msg{Subject: subjects.DeadLetter(step, dataset), Data: orig.Data, Header: nats.Header{}}
	for _, h := range []string{subjects.HeaderTraceParent, subjects.HeaderTraceState, subjects.HeaderRecords} {
		if v := orig.Header.Get(h); v != "" {
			m.Header.Set(h, v)
		}
	}
	_, bulk := subjects.BulkRecords(orig.Header)
	m.Header.Set(subjects.HeaderMsgID, subjects.WholeDeadLetterMsgID(origID, subjects.DeadLetterStep(step, dataset), bulk))
	m.Header.Set(subjects.HeaderOrigSubject, orig.Subject)
	m.Header.Set(subjects.HeaderOrigStream, a.Stream)
	m.Header.Set(subjects.HeaderOrigSeq, strconv.FormatUint(a.StreamSeq, 10))
	m.Header.Set(subjects.HeaderOrigMsgID, origID)
	m.Header.Set(subjects.HeaderDeliveries, strconv.FormatUint(a.Deliveries, 10))
	m.Header.Set(subjects.HeaderConsumer, a.Consumer)
	m.Header.Set(subjects.HeaderStep, step)
	if worker != "" {
		m.Header.Set(subjects.HeaderWorker, worker)
	}
	m.Header.Set(subjects.HeaderReason, subjects.CleanReason(reason))
	m.Header.Set(subjects.HeaderFailedAt, time.Now().UTC().Format(time.RFC3339Nano))
	subjects.FitDeadLetter(m, subjects.DeadLetterLimit(ctx, s.js))
	ack, err := s.js.PublishMsg(ctx, m)
	if err != nil {
		return 0, "", fmt.Errorf("publish dead letter: %w", err)
	}
	return ack.Sequence, subjects.TraceID(m.Header.Get(subjects.HeaderTraceParent)), nil
}
