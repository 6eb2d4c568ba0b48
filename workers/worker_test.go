package workers_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

const dataset = "orders"

type testBundle struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	return &testBundle{nc: nc, js: js}
}

// fastConfig is a worker config with test-sized delays.
func (b *testBundle) fastConfig(t *testing.T, step subjects.Step, h workers.Handler) workers.Config {
	return workers.Config{
		Conn:              b.nc,
		Step:              step,
		Dataset:           dataset,
		NewHandlerFunc:    func() (workers.Handler, error) { return h, nil },
		Logger:            zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel),
		Consumer:          subjects.ConsumerOptions{AckWait: 2 * time.Second, MaxDeliver: 3},
		RetryBackoffMin:   10 * time.Millisecond,
		RetryBackoffMax:   50 * time.Millisecond,
		RestartBackoffMin: 5 * time.Millisecond,
		RestartBackoffMax: 20 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond,
		DrainTimeout:      2 * time.Second,
	}
}

func (b *testBundle) publish(t *testing.T, subject string, n int, idPrefix string) {
	t.Helper()
	for i := range n {
		m := nats.NewMsg(subject)
		m.Data = fmt.Appendf(nil, `{"i":%d}`, i)
		m.Header.Set(subjects.HeaderMsgID, idPrefix+strconv.Itoa(i))
		_, err := b.js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second))
		require.NoError(t, err)
	}
	embeddedtest.WaitOrTimeout(t, b.js.PublishAsyncComplete(), 30*time.Second, "the publishes acknowledged")
}

// publishChunk publishes a bulk message of records NDJSON records on the
// ingest subject, with id.
func (b *testBundle) publishChunk(t *testing.T, id, data string, records int) {
	t.Helper()
	m := nats.NewMsg(subjects.Ingest(dataset))
	m.Data = []byte(data)
	m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
	m.Header.Set(subjects.HeaderMsgID, id)
	_, err := b.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
}

// payloads reads every message of a stream and returns the bodies.
func (b *testBundle) payloads(t *testing.T, stream string) []string {
	t.Helper()
	var out []string
	for _, m := range embeddedtest.ReadStream(t, b.js, stream) {
		out = append(out, string(m.Data))
	}
	return out
}

func (b *testBundle) lastMsg(t *testing.T, stream, subject string) (*jetstream.RawStreamMsg, error) {
	t.Helper()
	s, err := b.js.Stream(t.Context(), stream)
	require.NoError(t, err)
	return s.GetLastMsgForSubject(t.Context(), subject)
}

func requireExactlyOnce(t *testing.T, got []string, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, p := range got {
		seen[p]++
	}
	require.Len(t, got, n, "every record downstream, none twice")
	for i := range n {
		p := fmt.Sprintf(`{"i":%d}`, i)
		require.Equal(t, 1, seen[p], "record %s", p)
	}
}

func TestPassthroughMovesEveryRecordOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepTransform, workers.Passthrough(subjects.Clean(dataset))))

	const n = 10_000
	b.publish(t, subjects.Ingest(dataset), n, "id-")
	embeddedtest.WaitFor(t, time.Minute, "clean records", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamClean) >= n })
	// The same file published again: the server drops every record as a duplicate.
	b.publish(t, subjects.Ingest(dataset), n, "id-")
	require.Equal(t, uint64(n), embeddedtest.StreamMsgs(t, b.js, subjects.StreamIngest))
	requireExactlyOnce(t, b.payloads(t, subjects.StreamClean), n)
	require.Zero(t, embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ))
}

func TestHardStopMidRunLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const n, stopAt = 1000, 400
	var handled atomic.Int64
	blocked := make(chan struct{})
	stuck := workers.HandlerFunc(func(ctx context.Context, rec workers.Record) ([]workers.Output, error) {
		if handled.Add(1) == stopAt {
			close(blocked)
		}
		if handled.Load() >= stopAt {
			<-ctx.Done() // the worker "dies" here: cancelled, never acked
			return nil, ctx.Err()
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	cfg := b.fastConfig(t, subjects.StepValidate, stuck)
	cfg.DrainTimeout = 10 * time.Millisecond
	w, err := workers.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	b.publish(t, subjects.Ingest(dataset), n, "k-")
	<-blocked
	cancel()
	require.NoError(t, <-done)
	require.Less(t, embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid), uint64(n))

	// A fresh replica takes over: unacked work is redelivered and
	// outputs already published are dropped as duplicates.
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	embeddedtest.WaitFor(t, time.Minute, "all valid records", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) >= n })
	embeddedtest.CheckFor(t, 30*time.Second, embeddedtest.PollEvery, func() error {
		return embeddedtest.ConsumerIdle(t.Context(), b.js, subjects.StreamIngest, subjects.ConsumerName("validate", dataset))
	})
	requireExactlyOnce(t, b.payloads(t, subjects.StreamValid), n)
}

func TestPanicRestartsAndDeadLettersAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var calls atomic.Int64
	poison := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if strings.Contains(string(rec.Data), `"i":7}`) {
			calls.Add(1)
			panic("boom on record seven")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	w := workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, poison))
	b.publish(t, subjects.Ingest(dataset), 20, "p-")

	embeddedtest.WaitFor(t, 30*time.Second, "dead letter", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 1 })
	embeddedtest.WaitFor(t, 30*time.Second, "the rest", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) == 19 })
	require.Equal(t, int64(3), calls.Load(), "exactly MaxDeliver attempts")
	require.Equal(t, int64(3), w.Snapshot().Counters.Crashes)

	dl, err := b.lastMsg(t, subjects.StreamDLQ, subjects.DeadLetter("validate", dataset))
	require.NoError(t, err)
	require.Contains(t, dl.Header.Get(subjects.HeaderReason), "boom on record seven")
	require.Equal(t, "3", dl.Header.Get(subjects.HeaderDeliveries))
	require.Equal(t, "8", dl.Header.Get(subjects.HeaderOrigSeq), "record 7 is the 8th message")
	require.Equal(t, subjects.Ingest(dataset), dl.Header.Get(subjects.HeaderOrigSubject))
	require.Equal(t, subjects.StreamIngest, dl.Header.Get(subjects.HeaderOrigStream))
	require.JSONEq(t, `{"i":7}`, string(dl.Data))
}

func TestPermanentErrorsInBulk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rejectOdd := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if rec.Index%2 == 1 {
			return nil, workers.Permanentf("record %d is odd\nand this reason has a newline", rec.Index)
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, rejectOdd))

	b.publishChunk(t, "chunk-1", "{\"a\":0}\n{\"a\":1}\n\n{\"a\":2}\r\n{\"a\":3}\n{\"a\":4}\n", 5)

	embeddedtest.WaitFor(t, 30*time.Second, "outputs", func() bool {
		return embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) == 1 && embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 2
	})
	out, err := b.lastMsg(t, subjects.StreamValid, subjects.Valid(dataset))
	require.NoError(t, err)
	require.Equal(t, "3", out.Header.Get(subjects.HeaderRecords))
	require.Equal(t, "{\"a\":0}\n{\"a\":2}\n{\"a\":4}", string(out.Data))
	require.Equal(t, subjects.DeriveMsgID("chunk-1", "validate", 0), out.Header.Get(subjects.HeaderMsgID))

	dead := b.payloads(t, subjects.StreamDLQ)
	require.ElementsMatch(t, []string{`{"a":1}`, `{"a":3}`}, dead)
	dl, err := b.lastMsg(t, subjects.StreamDLQ, subjects.DeadLetter("validate", dataset))
	require.NoError(t, err)
	require.Equal(t, "record 3 is odd and this reason has a newline", dl.Header.Get(subjects.HeaderReason))
	require.Equal(t, "3", dl.Header.Get(subjects.HeaderRecordIndex))
}

func TestTransientErrorRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var attempts atomic.Int64
	flaky := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if attempts.Add(1) < 3 {
			return nil, errors.New("downstream unavailable")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	w := workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, flaky))
	b.publish(t, subjects.Ingest(dataset), 1, "f-")
	embeddedtest.WaitFor(t, 30*time.Second, "output", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) == 1 })
	snap := w.Snapshot()
	require.Equal(t, int64(2), snap.Counters.Retried)
	require.Equal(t, int64(2), snap.Counters.Redelivered)
	require.Contains(t, snap.LastErr, "downstream unavailable")
	require.Zero(t, embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ))
}

func TestStopDrainsInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset)))
	cfg.DrainTimeout = time.Minute // a graceful stop however loaded the machine is
	w, err := workers.New(cfg)
	require.NoError(t, err)
	require.NoError(t, w.Stop(t.Context()), "Stop without Start is a no-op")
	require.NoError(t, w.Start(t.Context()))
	b.publish(t, subjects.Ingest(dataset), 2000, "d-")
	embeddedtest.WaitFor(t, 30*time.Second, "some progress", func() bool { return w.Snapshot().Counters.Acked > 0 })
	require.NoError(t, w.Stop(t.Context()))
	require.NoError(t, w.Stop(t.Context()), "Stop is idempotent")
	<-w.Stopped()
	require.NoError(t, w.Err())
	require.Equal(t, subjects.StateStopped, w.Snapshot().State)

	snap := w.Snapshot()
	require.Equal(t, snap.Counters.Outputs, snap.Counters.Acked, "every message the worker handled was acked before it stopped")
	require.Zero(t, snap.InFlight)

	// Messages the server sent after the drain began come back after
	// AckWait; a new replica finishes the job, each record once.
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	embeddedtest.CheckFor(t, time.Minute, embeddedtest.PollEvery, func() error {
		return embeddedtest.ConsumerIdle(t.Context(), b.js, subjects.StreamIngest, subjects.ConsumerName("validate", dataset))
	})
	require.Equal(t, uint64(2000), embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid))
}

func TestHeartbeats(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sub, err := b.nc.SubscribeSync(subjects.AllHeartbeats)
	require.NoError(t, err)
	w := workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	msg, err := sub.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, subjects.Heartbeat("validate", w.ID()), msg.Subject)
	require.Contains(t, string(msg.Data), `"dataset":"orders"`)
}

func TestPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	w.Pause()
	embeddedtest.WaitFor(t, 10*time.Second, "paused state", func() bool { return w.Snapshot().State == subjects.StatePaused })
	b.publish(t, subjects.Ingest(dataset), 10, "z-")
	require.Zero(t, embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid), "a paused worker fetches nothing")
	w.Resume()
	embeddedtest.WaitFor(t, 10*time.Second, "resumed output", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) == 10 })
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := func() (workers.Handler, error) { return workers.Passthrough("x"), nil }
	for name, cfg := range map[string]workers.Config{
		"no conn":    {Step: subjects.StepValidate, Dataset: "d", NewHandlerFunc: h},
		"bad ds":     {Conn: b.nc, Step: subjects.StepValidate, Dataset: "a.b", NewHandlerFunc: h},
		"no handler": {Conn: b.nc, Step: subjects.StepValidate, Dataset: "d"},
		"sink step":  {Conn: b.nc, Step: subjects.StepIngest, Dataset: "d", NewHandlerFunc: h},
		"timeout":    {Conn: b.nc, Step: subjects.StepValidate, Dataset: "d", NewHandlerFunc: h, HandlerTimeout: time.Minute},
	} {
		_, err := workers.New(cfg)
		require.ErrorIs(t, err, workers.ErrInvalidConfig, name)
	}
}

func TestTraceContextTravels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	odd := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if strings.Contains(string(rec.Data), "bad") {
			return nil, workers.Permanentf("bad record")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, odd))
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepTransform, workers.Passthrough(subjects.Clean(dataset))))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for i, body := range []string{`{"ok":1}`, `{"bad":1}`} {
		m := nats.NewMsg(subjects.Ingest(dataset))
		m.Data = []byte(body)
		m.Header.Set(subjects.HeaderTraceParent, parent)
		m.Header.Set(subjects.HeaderMsgID, "t-"+strconv.Itoa(i))
		_, err := b.js.PublishMsg(t.Context(), m)
		require.NoError(t, err)
	}
	embeddedtest.WaitFor(t, 30*time.Second, "clean and dead", func() bool {
		return embeddedtest.StreamMsgs(t, b.js, subjects.StreamClean) == 1 && embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 1
	})
	clean, err := b.lastMsg(t, subjects.StreamClean, subjects.Clean(dataset))
	require.NoError(t, err)
	tp := clean.Header.Get(subjects.HeaderTraceParent)
	require.Equal(t, subjects.TraceID(parent), subjects.TraceID(tp), "same trace end to end")
	require.NotEqual(t, parent, tp, "each hop is a new span")
	dl, err := b.lastMsg(t, subjects.StreamDLQ, subjects.DeadLetter("validate", dataset))
	require.NoError(t, err)
	require.Equal(t, subjects.TraceID(parent), subjects.TraceID(dl.Header.Get(subjects.HeaderTraceParent)))
}
