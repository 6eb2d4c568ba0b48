package supervisor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// A record whose handler fails transiently every time is tried exactly
// MaxDeliver times, with growing pauses, then ends in the DLQ once, with
// the worker's error and its original stream sequence.
func TestPoisonRecordEndsInDLQ(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)

	var (
		mu       sync.Mutex
		attempts []time.Time
	)
	h := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if string(rec.Data) == `{"poison":true}` {
			mu.Lock()
			attempts = append(attempts, time.Now())
			mu.Unlock()
			return nil, errors.New("warehouse db unavailable")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	cfg := b.workerConfig(t, subjects.StepValidate, h)
	workertest.StartWorker(t, cfg)
	seqs := b.publish(t, subjects.Ingest(dataset), `{"ok":1}`, `{"poison":true}`, `{"ok":2}`)

	st, err := supervisor.WaitIdle(t.Context(), b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, uint64(1), step(st, "validate", dataset).DLQ)
	require.Equal(t, uint64(1), st.DeadLetters)
	require.Equal(t, uint64(2), b.streamMsgs(t, subjects.StreamValid, subjects.Valid(dataset)))

	mu.Lock()
	got := append([]time.Time(nil), attempts...)
	mu.Unlock()
	require.Len(t, got, cfg.Consumer.MaxDeliver, "attempts")
	for i := 1; i < len(got); i++ {
		want := cfg.RetryBackoffMin << (i - 1) // the runtime doubles the Nak delay per delivery
		require.GreaterOrEqual(t, got[i].Sub(got[i-1]), want*9/10, "pause before attempt %d", i+1)
	}

	dls, err := supervisor.ListDeadLetters(t.Context(), b.js, supervisor.DLQFilter{Step: "validate"})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	d := dls[0]
	require.Equal(t, seqs[1], d.OrigSeq)
	require.Equal(t, subjects.StreamIngest, d.OrigStream)
	require.Equal(t, subjects.Ingest(dataset), d.OrigSubject)
	require.Equal(t, cfg.Consumer.MaxDeliver, d.Deliveries)
	require.Equal(t, "validate", d.Step)
	require.Equal(t, dataset, d.Dataset)
	require.Contains(t, d.Reason, "warehouse db unavailable")
	require.Equal(t, `{"poison":true}`, string(d.Data))
}

// The backstop: a message that reaches MaxDeliver without its worker
// dead-lettering it (a crash, an old client) is copied to the DLQ by the
// supervisor from the advisory, with the last error the step reported.
func TestAdvisoryBackstop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := b.subscribeEvents(t)
	b.startSupervisor(t, nil)

	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{MaxDeliver: 2, AckWait: 5 * time.Second})
	require.NoError(t, err)
	cons, err := b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)

	// A worker of this consumer reports its last error in a heartbeat.
	beat := `{"worker":"w-crashy","step":"validate","dataset":"orders","consumer":"validate_orders","host":"h","interval_ms":100,"state":"running","last_error":"segfault in parser"}`
	require.NoError(t, b.nc.Publish(subjects.Heartbeat("validate", "w-crashy"), []byte(beat)))
	ev.next(t, 2*time.Second, func(e supervisor.Event) bool { return e.Worker == "w-crashy" })

	seq := b.publish(t, subjects.Ingest(dataset), `{"id":"p"}`)[0]
	for range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(embeddedtest.Timeout(2*time.Second)))
		require.NoError(t, err)
		msg := <-batch.Messages()
		require.NotNil(t, msg)
		require.NoError(t, msg.Nak()) // a crash would leave it to AckWait; a Nak is the quick equivalent
	}
	// The server notices the exceeded count on its next delivery attempt.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond))
	require.NoError(t, err)
	for range batch.Messages() {
		t.Fatal("delivered beyond MaxDeliver")
	}

	e := ev.next(t, 3*time.Second, func(e supervisor.Event) bool { return e.Kind == supervisor.EventDeadLetter })
	require.Equal(t, seq, e.Seq)
	dls, err := supervisor.ListDeadLetters(t.Context(), b.js, supervisor.DLQFilter{Step: "validate", Dataset: dataset})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	d := dls[0]
	require.Equal(t, seq, d.OrigSeq)
	require.Equal(t, subjects.StreamIngest, d.OrigStream)
	require.Equal(t, "validate_orders", d.Consumer)
	require.Equal(t, 2, d.Deliveries)
	require.Equal(t, "w-crashy", d.Worker)
	require.Contains(t, d.Reason, "max deliveries (2)")
	require.Contains(t, d.Reason, "segfault in parser")
	require.Equal(t, `{"id":"p"}`, string(d.Data))

	st := b.snapshot(t)
	require.Equal(t, 0, step(st, "validate", dataset).AckPending)
	require.Equal(t, uint64(1), step(st, "validate", dataset).DLQ)
}

// Replay after fixing the cause moves a dead letter through once; a
// second replay changes nothing.
func TestReplay(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	var broken atomic.Bool
	broken.Store(true)
	var handled atomic.Int64
	h := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if broken.Load() {
			return nil, workers.Permanentf("currency lookup table missing")
		}
		handled.Add(1)
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, h))
	b.publish(t, subjects.Ingest(dataset), `{"order_id":"r-1"}`)
	idle := func() *supervisor.Status {
		st, err := supervisor.WaitIdle(t.Context(), b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
		require.NoError(t, err)
		return st
	}
	st := idle()
	require.Equal(t, uint64(1), st.DeadLetters)
	dls, err := supervisor.ListDeadLetters(t.Context(), b.js, supervisor.DLQFilter{})
	require.NoError(t, err)
	require.Len(t, dls, 1)
	require.Contains(t, dls[0].Reason, "currency lookup table missing")

	broken.Store(false)
	dry, err := supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{All: true, DryRun: true})
	require.NoError(t, err)
	require.Equal(t, []supervisor.ReplayResult{{Seq: dls[0].Seq, Subject: subjects.Ingest(dataset), MsgID: subjects.ReplayMsgID(dls[0].Seq), Outcome: supervisor.ReplayDryRun}}, dry)
	require.Equal(t, uint64(1), b.streamMsgs(t, subjects.StreamIngest, subjects.Ingest(dataset)), "dry run published")

	res, err := supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{Seqs: []uint64{dls[0].Seq}})
	require.NoError(t, err)
	require.Len(t, res, 1)
	require.Equal(t, supervisor.ReplayPublished, res[0].Outcome)
	idle()
	require.Equal(t, int64(1), handled.Load())
	require.Equal(t, uint64(1), b.streamMsgs(t, subjects.StreamValid, subjects.Valid(dataset)))

	// Again: skipped by the replay mark; forced: dropped by the server.
	res, err = supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{All: true})
	require.NoError(t, err)
	require.Equal(t, supervisor.ReplaySkipped, res[0].Outcome)
	res, err = supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{All: true, Force: true})
	require.NoError(t, err)
	require.Equal(t, supervisor.ReplayDuplicate, res[0].Outcome)
	idle()
	require.Equal(t, int64(1), handled.Load())
	require.Equal(t, uint64(1), b.streamMsgs(t, subjects.StreamValid, subjects.Valid(dataset)))
	require.Equal(t, uint64(2), b.streamMsgs(t, subjects.StreamIngest, subjects.Ingest(dataset)))

	got, err := supervisor.GetDeadLetter(t.Context(), b.js, dls[0].Seq)
	require.NoError(t, err)
	require.NotNil(t, got.Replayed)

	n, err := supervisor.PurgeDeadLetters(t.Context(), b.js, supervisor.DLQFilter{Step: "validate"})
	require.NoError(t, err)
	require.Equal(t, uint64(1), n)
	require.Equal(t, uint64(0), b.snapshot(t).DeadLetters)
	_, err = supervisor.GetDeadLetter(t.Context(), b.js, dls[0].Seq)
	require.ErrorIs(t, err, supervisor.ErrNotFound, strconv.Itoa(int(dls[0].Seq)))
}

// Advisories published while no supervisor ran are not lost: JF_ADVISORIES
// keeps them, and a supervisor that starts later dead-letters the message
// with its context (deliveries, consumer, the step's last error as the
// fleet bucket recorded it before the outage).
func TestAdvisoriesMissedWhileDownAreBackfilled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	newSup := func() *supervisor.Supervisor {
		s, err := supervisor.New(supervisor.Config{
			Conn: b.nc, Logger: b.log, ID: "sup-test", SweepInterval: 25 * time.Millisecond,
			AnnounceInterval: 200 * time.Millisecond, DeadAfter: 30 * time.Second,
		})
		require.NoError(t, err)
		require.NoError(t, s.Start(t.Context()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, s.Stop(ctx))
		})
		return s
	}
	ev := b.subscribeEvents(t)
	first := newSup()
	beat := `{"worker":"w-crashy","step":"validate","dataset":"orders","consumer":"validate_orders","host":"h","interval_ms":100,"state":"running","last_error":"segfault in parser"}`
	require.NoError(t, b.nc.Publish(subjects.Heartbeat("validate", "w-crashy"), []byte(beat)))
	ev.next(t, 2*time.Second, func(e supervisor.Event) bool { return e.Worker == "w-crashy" })
	require.NoError(t, first.Stop(t.Context()))

	// While no supervisor runs, a poison message runs out of deliveries.
	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{MaxDeliver: 2, AckWait: 5 * time.Second})
	require.NoError(t, err)
	cons, err := b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)
	seq := b.publish(t, subjects.Ingest(dataset), `{"id":"p"}`)[0]
	for range 2 {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(embeddedtest.Timeout(2*time.Second)))
		require.NoError(t, err)
		msg := <-batch.Messages()
		require.NotNil(t, msg)
		require.NoError(t, msg.Nak())
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond)) // the server notices the exceeded count
	require.NoError(t, err)
	for range batch.Messages() {
		t.Fatal("delivered beyond MaxDeliver")
	}
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		if n := b.streamMsgs(t, subjects.StreamAdvisories, ">"); n != 1 {
			return fmt.Errorf("%d advisories kept, want 1", n)
		}
		return nil
	})
	require.Equal(t, uint64(0), b.snapshot(t).DeadLetters, "no supervisor, no dead letter yet")

	newSup()
	var dls []supervisor.DeadLetter
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		dls, err = supervisor.ListDeadLetters(t.Context(), b.js, supervisor.DLQFilter{Step: "validate", Dataset: dataset})
		require.NoError(t, err)
		if len(dls) == 0 {
			return errors.New("no dead letter yet")
		}
		return nil
	})
	require.Len(t, dls, 1)
	d := dls[0]
	require.Equal(t, seq, d.OrigSeq)
	require.Equal(t, subjects.StreamIngest, d.OrigStream)
	require.Equal(t, "validate_orders", d.Consumer)
	require.Equal(t, 2, d.Deliveries)
	require.Equal(t, "w-crashy", d.Worker)
	require.Contains(t, d.Reason, "max deliveries (2)")
	require.Contains(t, d.Reason, "segfault in parser")
	require.Equal(t, `{"id":"p"}`, string(d.Data))

	// Handled once: the advisory is acked, a third supervisor finds nothing to do.
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		c, err := b.js.Consumer(t.Context(), subjects.StreamAdvisories, subjects.ConsumerAdvisories)
		require.NoError(t, err)
		ci, err := c.Info(t.Context())
		require.NoError(t, err)
		if ci.NumPending != 0 || ci.NumAckPending != 0 {
			return fmt.Errorf("advisories pending %d, in flight %d", ci.NumPending, ci.NumAckPending)
		}
		return nil
	})
}

// A message at the max payload that JetStream gave up on is still
// dead-lettered by the supervisor: its copy is cut to fit and marked.
// Replay sends the whole record from its stream, and refuses (it does
// not send the head alone) once the stream no longer holds it.
func TestTruncatedDeadLetterIsReplayedWholeFromItsStream(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{MaxDeliver: 2, AckWait: 5 * time.Second})
	require.NoError(t, err)
	cons, err := b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)

	m := nats.NewMsg(subjects.Ingest(dataset))
	m.Header.Set(subjects.HeaderMsgID, "order-0000000000001")
	m.Data = bytes.Repeat([]byte("x"), int(b.nc.MaxPayload())-(m.Size()-len(m.Subject)))
	ack, err := b.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	record := m.Data

	// A step that cannot dead-letter it (an old client) terminates it.
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(embeddedtest.Timeout(2*time.Second)))
	require.NoError(t, err)
	msg := <-batch.Messages()
	require.NotNil(t, msg)
	require.NoError(t, msg.Term())

	var dls []supervisor.DeadLetter
	embeddedtest.CheckFor(t, 10*time.Second, embeddedtest.PollEvery, func() error {
		dls, err = supervisor.ListDeadLetters(t.Context(), b.js, supervisor.DLQFilter{})
		if err == nil && len(dls) != 1 {
			err = fmt.Errorf("%d dead letters", len(dls))
		}
		return err
	})
	d := dls[0]
	require.True(t, d.Truncated)
	require.Equal(t, len(record), d.OrigSize)
	require.Less(t, len(d.Data), len(record))
	require.Equal(t, record[:len(d.Data)], d.Data)
	require.Equal(t, ack.Sequence, d.OrigSeq)
	require.Contains(t, d.Reason, "terminated")
	stored := &nats.Msg{Subject: d.Subject, Header: d.Header, Data: d.Data}
	require.LessOrEqual(t, int64(stored.Size()-len(stored.Subject)), b.nc.MaxPayload())

	res, err := supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{Seqs: []uint64{d.Seq}})
	require.NoError(t, err)
	require.Equal(t, supervisor.ReplayPublished, res[0].Outcome)
	ingest, err := b.js.Stream(t.Context(), subjects.StreamIngest)
	require.NoError(t, err)
	// Read through a consumer: the get API is slow for 8 MB under -race.
	cons2, err := ingest.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: res[0].StreamSeq})
	require.NoError(t, err)
	replayed, err := cons2.Next(jetstream.FetchMaxWait(embeddedtest.Timeout(10 * time.Second)))
	require.NoError(t, err)
	require.Equal(t, record, replayed.Data(), "the whole record, from its stream")
	require.Equal(t, subjects.ReplayMsgID(d.Seq), replayed.Headers().Get(subjects.HeaderMsgID))

	require.NoError(t, ingest.DeleteMsg(t.Context(), ack.Sequence))
	_, err = supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{Seqs: []uint64{d.Seq}, Force: true})
	require.ErrorIs(t, err, supervisor.ErrOriginalGone)
	require.ErrorContains(t, err, fmt.Sprintf("JF_INGEST seq %d has left the stream", ack.Sequence))
	require.ErrorContains(t, err, "not replayed")
	_, err = supervisor.Replay(t.Context(), b.js, supervisor.ReplayOptions{All: true, DryRun: true, Force: true})
	require.ErrorIs(t, err, supervisor.ErrOriginalGone, "a dry run says so too")
	require.Equal(t, uint64(1), b.streamMsgs(t, subjects.StreamIngest, subjects.Ingest(dataset)), "nothing sent after the original left")
}
