package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// nats-server and nats.go keep a few process-wide goroutines.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).readLoop"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).flusher"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).handleAsyncReply"),
	)
}

const dataset = "orders"

type testBundle struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	log zerolog.Logger
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	return &testBundle{nc: nc, js: js, log: zerolog.New(zerolog.NewTestWriter(t))}
}

// startSupervisor runs a supervisor with test-sized intervals.
func (b *testBundle) startSupervisor(t *testing.T, mod func(*supervisor.Config)) *supervisor.Supervisor {
	t.Helper()
	cfg := supervisor.Config{
		Conn:             b.nc,
		Logger:           b.log,
		ID:               "sup-test",
		SweepInterval:    25 * time.Millisecond,
		AnnounceInterval: 200 * time.Millisecond,
		DeadAfter:        time.Second,
		GoneRetention:    time.Minute,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := supervisor.New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, s.Stop(ctx))
	})
	return s
}

func (b *testBundle) workerConfig(t *testing.T, step subjects.Step, h workers.Handler) workers.Config {
	return workers.Config{
		Conn:              b.nc,
		Step:              step,
		Dataset:           dataset,
		NewHandlerFunc:    func() (workers.Handler, error) { return h, nil },
		Logger:            b.log,
		Consumer:          subjects.ConsumerOptions{AckWait: 2 * time.Second, MaxDeliver: 4},
		RetryBackoffMin:   40 * time.Millisecond,
		RetryBackoffMax:   time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		DrainTimeout:      2 * time.Second,
	}
}

// publish sends records with ids and returns their stream sequences.
func (b *testBundle) publish(t *testing.T, subject string, bodies ...string) []uint64 {
	t.Helper()
	var seqs []uint64
	for i, body := range bodies {
		m := nats.NewMsg(subject)
		m.Data = []byte(body)
		m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("%s-%d-%d", subject, time.Now().UnixNano(), i))
		ack, err := b.js.PublishMsg(t.Context(), m)
		require.NoError(t, err)
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

func (b *testBundle) snapshot(t *testing.T, opts ...supervisor.SnapshotOption) *supervisor.Status {
	t.Helper()
	st, err := supervisor.Snapshot(t.Context(), b.js, opts...)
	require.NoError(t, err)
	return st
}

func step(st *supervisor.Status, name, ds string) *supervisor.StepStatus {
	for i := range st.Steps {
		if st.Steps[i].Step == name && st.Steps[i].Dataset == ds {
			return &st.Steps[i]
		}
	}
	return nil
}

// streamMsgs is the number of messages stored on subject.
func (b *testBundle) streamMsgs(t *testing.T, stream, subject string) uint64 {
	t.Helper()
	s, err := b.js.Stream(t.Context(), stream)
	require.NoError(t, err)
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(subject))
	require.NoError(t, err)
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}

// events collects what the supervisor publishes on jf.sup.events.
type events struct {
	ch chan supervisor.Event
}

func (b *testBundle) subscribeEvents(t *testing.T) *events {
	t.Helper()
	e := &events{ch: make(chan supervisor.Event, 256)}
	sub, err := b.nc.Subscribe(subjects.SupEvents, func(m *nats.Msg) {
		var ev supervisor.Event
		if json.Unmarshal(m.Data, &ev) == nil {
			e.ch <- ev
		}
	})
	require.NoError(t, err)
	require.NoError(t, b.nc.Flush())
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return e
}

// next waits for the next event matching f.
func (e *events) next(t *testing.T, total time.Duration, f func(supervisor.Event) bool) supervisor.Event {
	t.Helper()
	timer := time.NewTimer(embeddedtest.Timeout(total))
	defer timer.Stop()
	for {
		select {
		case ev := <-e.ch:
			if f(ev) {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no matching event within %s", embeddedtest.Timeout(total))
		}
	}
}
