package embeddedtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// StreamMsgs is how many messages stream holds now: 0 when it does not
// exist yet, so it can be polled before a worker has created it.
func StreamMsgs(tb testing.TB, js jetstream.JetStream, stream string) uint64 {
	tb.Helper()
	n, err := CountMsgs(tb.Context(), js, stream)
	require.NoError(tb, err)
	return n
}

// CountMsgs is [StreamMsgs] for a poll that must ride out a server's loss
// (a node killed, a leader elected): it returns the error instead of
// failing the test, and bounds each ask by 3s.
func CountMsgs(ctx context.Context, js jetstream.JetStream, stream string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	return s.CachedInfo().State.Msgs, nil // js.Stream fetched it just now
}

// SubjectMsgs is how many messages stream holds on subjects matching
// filter (jf.dlq.> and the like): 0 when the stream does not exist yet.
func SubjectMsgs(tb testing.TB, js jetstream.JetStream, stream, filter string) uint64 {
	tb.Helper()
	s, err := js.Stream(tb.Context(), stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0
	}
	require.NoError(tb, err, "stream %s", stream)
	info, err := s.Info(tb.Context(), jetstream.WithSubjectFilter(filter))
	require.NoError(tb, err, "stream %s on %s", stream, filter)
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// ReadStream reads every message stream holds now on the subjects filters
// (every subject when none), in stream order, through an ordered consumer
// (one round trip per 500 messages, not one per message). It rides out
// a cluster node's loss: a failed fetch is tried again, as the ordered
// consumer re-creates itself, for up to [Timeout](time.Minute) without
// progress.
func ReadStream(tb testing.TB, js jetstream.JetStream, stream string, filters ...string) []*jetstream.RawStreamMsg {
	tb.Helper()
	ctx := tb.Context()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	require.NoError(tb, err, "read stream %s", stream)
	info, err := cons.Info(ctx)
	require.NoError(tb, err, "read stream %s", stream)
	n := int(info.NumPending)
	out := make([]*jetstream.RawStreamMsg, 0, n)
	stall := Timeout(time.Minute)
	lastProgress := time.Now()
	var lastErr error
	for len(out) < n {
		if time.Since(lastProgress) > stall {
			require.FailNow(tb, fmt.Sprintf("read of stream %s %v stalled at %d of %d messages", stream, filters, len(out), n), "last error: %v", lastErr)
		}
		batch, err := cons.Fetch(min(n-len(out), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			lastErr = err
			continue // Fetch waited up to its FetchMaxWait: no spin
		}
		for m := range batch.Messages() {
			raw, err := rawOf(m)
			require.NoError(tb, err)
			out = append(out, raw)
			lastProgress = time.Now()
		}
		if err := batch.Error(); err != nil {
			lastErr = err
		}
		if ctx.Err() != nil {
			require.FailNow(tb, "test ended while reading stream "+stream)
		}
	}
	return out
}

// WaitStream waits until stream holds want messages and returns them (see
// [ReadStream]). It fails at once when the stream holds more than want,
// and after [Timeout](total) when it holds fewer, with the count it has.
// An error asking for the count (a server restarting) is waited out.
func WaitStream(tb testing.TB, js jetstream.JetStream, stream string, want int, total time.Duration) []*jetstream.RawStreamMsg {
	tb.Helper()
	CheckFor(tb, total, PollEvery, func() error {
		n, err := CountMsgs(tb.Context(), js, stream)
		if err != nil {
			return err
		}
		require.LessOrEqual(tb, n, uint64(want), "stream %s holds more messages than expected", stream)
		if n < uint64(want) {
			return fmt.Errorf("stream %s: %d messages, want %d", stream, n, want)
		}
		return nil
	})
	return ReadStream(tb, js, stream)
}

// rawOf turns a consumed message into the form Stream.GetMsg returns, so
// tests read what a stream holds in one shape however it was read.
func rawOf(m jetstream.Msg) (*jetstream.RawStreamMsg, error) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, err
	}
	return &jetstream.RawStreamMsg{
		Subject:  m.Subject(),
		Sequence: meta.Sequence.Stream,
		Header:   m.Headers(),
		Data:     m.Data(),
		Time:     meta.Timestamp,
	}, nil
}

// ConsumerIdle returns nil when consumer on stream exists and has nothing
// left to deliver and nothing awaiting an ack, else an error that says
// what it has: a condition for [CheckFor], or `== nil` for [WaitFor].
func ConsumerIdle(ctx context.Context, js jetstream.JetStream, stream, consumer string) error {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return fmt.Errorf("consumer %s on %s: %w", consumer, stream, err)
	}
	ci := c.CachedInfo() // js.Consumer fetched it just now
	if ci.NumPending > 0 || ci.NumAckPending > 0 {
		return fmt.Errorf("consumer %s on %s: %d pending, %d awaiting ack", consumer, stream, ci.NumPending, ci.NumAckPending)
	}
	return nil
}
