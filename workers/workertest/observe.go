package workertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

// waitTimeout bounds every wait of the suite: generous, since a loaded CI
// machine runs many servers at once; a passing wait ends far sooner.
const waitTimeout = 30 * time.Second

// waitFor polls cond until it holds, failing the test after waitTimeout
// with what it waited for.
//
// TODO(testkit): replace with embeddedtest's CI-scaled poller.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			require.FailNow(tb, "timed out waiting for "+what)
		}
		select {
		case <-tb.Context().Done():
			require.FailNow(tb, "test ended waiting for "+what)
		case <-tick.C: // polling the server's state, not waiting for time
		}
	}
}

// waitClosed waits until ch is closed, failing the test after waitTimeout
// with what it waited for.
//
// TODO(testkit): replace with embeddedtest's CI-scaled WaitOrTimeout.
func waitClosed(tb testing.TB, ch <-chan struct{}, what string) {
	tb.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		require.FailNow(tb, "timed out waiting for "+what)
	}
}

// StoredMsgs returns the messages stream stores on subjects matching
// filter, in order.
//
// TODO(testkit): replace with embeddedtest's stream reader.
func StoredMsgs(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", filter, stream, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// OutputRecords is an EffectsFunc for a step that publishes: it
// counts the records stored on subjects matching filter, each record of a
// bulk message (Jf-Records) one. A missing stream holds none.
func OutputRecords(js jetstream.JetStream, filter string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		stream, err := js.StreamNameBySubject(ctx, filter)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		msgs, err := StoredMsgs(ctx, js, stream, filter)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		n := 0
		for _, m := range msgs {
			n += records(m)
		}
		return n, nil
	}
}

// records is how many records message m carries.
func records(m *jetstream.RawStreamMsg) int {
	if v := m.Header.Get(subjects.HeaderRecords); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return 1
}
