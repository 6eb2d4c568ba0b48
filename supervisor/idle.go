package supervisor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// Busy says why the fleet is not idle, "" if it is: an object in the
// landing bucket not yet ingested, a consumer with messages pending or in
// flight (checked in pipeline order: ingest-stage consumers first, then
// valid, then clean), a mart that has not flushed what its aggregate
// consumer delivered, or, once all that is done, records in none of
// clean, dead-lettered and duplicates, or a message that could not be
// dead-lettered (see [DatasetBalance]).
func (s *Status) Busy() string {
	if b := s.busy(""); b != "" {
		return b
	}
	hasConsumer := slices.ContainsFunc(s.Steps, func(st StepStatus) bool { return st.Stream != "" })
	if !hasConsumer {
		for _, st := range s.Streams {
			if st.Messages > 0 {
				return fmt.Sprintf("%s holds %d message(s) and no consumer reads it yet", st.Name, st.Messages)
			}
		}
	}
	return s.unbalanced()
}

// busy is what work is under way for dataset ("": any dataset).
func (s *Status) busy(dataset string) string {
	if l := s.Landing; l != nil && l.Waiting > 0 {
		return fmt.Sprintf("landing: %d object(s) waiting to be ingested (%s)", l.Waiting, strings.Join(l.Names, ", "))
	}
	for _, stream := range subjects.StageStreams {
		for _, st := range s.Steps {
			if st.Stream != stream || (dataset != "" && st.Dataset != dataset) {
				continue
			}
			name := st.Step + "/" + st.Dataset
			switch {
			case st.Pending > 0 && st.Waiting != "":
				return fmt.Sprintf("%s: %d pending, not consumed: the step waits (%s)", name, st.Pending, st.Waiting)
			case st.Pending > 0 && st.AckPending > 0:
				return fmt.Sprintf("%s: %d pending, %d in flight", name, st.Pending, st.AckPending)
			case st.Pending > 0:
				return fmt.Sprintf("%s: %d pending", name, st.Pending)
			case st.AckPending > 0:
				return fmt.Sprintf("%s: %d in flight", name, st.AckPending)
			}
		}
	}
	// An aggregator that consumed something must have reported outputs for
	// it (marts, or the lake of its dataset), else they are not written yet.
	for _, st := range s.Steps {
		if st.Step != subjects.StepAggregate.Name || st.DeliveredSeq == 0 || (dataset != "" && st.Dataset != dataset) {
			continue
		}
		if !slices.ContainsFunc(s.Marts, func(m MartStatus) bool { return m.Dataset == st.Dataset }) {
			return fmt.Sprintf("aggregate/%s: no mart of the dataset reported yet", st.Dataset)
		}
	}
	for _, m := range s.Marts {
		if dataset != "" && m.Dataset != dataset {
			continue
		}
		if m.Unflushed > 0 {
			return fmt.Sprintf("mart %s: %d record(s) not flushed", m.Name, m.Unflushed)
		}
		if m.Rebuilding != "" {
			return fmt.Sprintf("mart %s: rebuilding from the lake (%s)", m.Name, m.Rebuilding)
		}
		if m.Dataset == "" {
			continue
		}
		// Every aggregate consumer of the dataset: one per partition of a
		// partitioned clean stage.
		for _, st := range s.Steps {
			if st.Step != subjects.StepAggregate.Name || st.Dataset != m.Dataset {
				continue
			}
			if want := st.DeliveredSeq; m.LastSeq < want {
				return fmt.Sprintf("mart %s: flushed up to seq %d of %d", m.Name, m.LastSeq, want)
			}
		}
	}
	return ""
}

// WaitIdleOptions tune [WaitIdle].
type WaitIdleOptions struct {
	// Poll is the pause between two looks. Default 250ms.
	Poll time.Duration
	// Snapshot options (e.g. WithMarts) for every look.
	Snapshot []SnapshotOption
	// ProgressFunc, if set, gets every status taken and why it is busy.
	ProgressFunc func(st *Status, busy string)
}

// WaitIdle polls [Snapshot] until the fleet is idle (see [Status.Busy])
// on two consecutive looks with no stage stream growing in between, and
// returns the last status. When ctx ends first it returns an error
// wrapping ErrNotIdle that names what is still busy.
func WaitIdle(ctx context.Context, js jetstream.JetStream, o WaitIdleOptions) (*Status, error) {
	if o.Poll <= 0 {
		o.Poll = 250 * time.Millisecond
	}
	var (
		prev     *Status
		lastBusy = "no look taken yet"
	)
	t := time.NewTicker(o.Poll)
	defer t.Stop()
	for {
		// Each look has its own deadline: a request lost in a cluster
		// leader election must not use up the whole wait.
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		st, err := Snapshot(sctx, js, o.Snapshot...)
		cancel()
		switch {
		case err != nil && ctx.Err() != nil:
		case err != nil:
			lastBusy = err.Error()
			prev = nil
		default:
			busy := st.Busy()
			if o.ProgressFunc != nil {
				o.ProgressFunc(st, busy)
			}
			if busy == "" {
				if prev != nil && sameStreams(prev, st) {
					return st, nil
				}
				prev = st
				lastBusy = "settling (idle once, waiting for a second look)"
			} else {
				prev, lastBusy = nil, busy
			}
		}
		select {
		case <-ctx.Done():
			cause := context.Cause(ctx)
			if errors.Is(cause, context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: %s", ErrNotIdle, lastBusy)
			}
			return nil, fmt.Errorf("%w: %s (%w)", ErrNotIdle, lastBusy, cause)
		case <-t.C:
		}
	}
}

// sameStreams compares what the streams hold, not where their replicas
// are (cluster details change between looks without new data).
func sameStreams(a, b *Status) bool {
	held := func(x, y StreamStatus) bool {
		return x.Name == y.Name && x.Messages == y.Messages && x.Bytes == y.Bytes && x.FirstSeq == y.FirstSeq && x.LastSeq == y.LastSeq
	}
	return slices.EqualFunc(a.Streams, b.Streams, held) && a.DeadLetters == b.DeadLetters
}
