package workertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// errInjected is the transient failure the suite injects.
var errInjected = errors.New("workertest: injected transient failure")

// testRecord: records one per message, one of them without a message id
// (its outputs' ids derive from its stream sequence). Each takes effect
// once, none before it is acked.
func testRecord(t *testing.T, h *harness) {
	h.start()
	const n = 5
	seqs := make([]uint64, 0, n)
	for i := range n {
		id := "rec-" + strconv.Itoa(i)
		if i == n-1 {
			id = ""
		}
		seqs = append(seqs, h.publish(id, h.step.ValidFunc(i), 0))
	}
	h.waitAcked(0, seqs...)
	require.Equal(t, n, h.effects())
	require.Empty(t, h.deadLetters())
}

// testBulk: an NDJSON chunk takes effect record by record; in a chunk
// with a bad record the others take effect, the bad one is dead-lettered
// by its index, and the message is acked.
func testBulk(t *testing.T, h *harness) {
	h.start()
	chunk := [][]byte{h.step.ValidFunc(0), h.step.ValidFunc(1), h.step.ValidFunc(2), h.step.ValidFunc(3)}
	seq := h.publish("bulk-1", subjects.JoinBulk(chunk), len(chunk))
	h.waitAcked(0, seq)
	require.Equal(t, len(chunk), h.effects())
	if h.f.NoPermanent {
		return
	}
	mixed := [][]byte{h.step.ValidFunc(10), h.step.Invalid, h.step.ValidFunc(11)}
	seq = h.publish("bulk-2", subjects.JoinBulk(mixed), len(mixed))
	h.waitSettled(seq)
	require.Equal(t, len(chunk)+2, h.effects())
	dls := h.deadLetters()
	require.Len(t, dls, 1)
	h.requireDeadLetter(dls[0], "bulk-2", seq, h.step.Invalid, 1)
	require.Equal(t, "1", dls[0].Header.Get(subjects.HeaderRecordIndex), "the bad record's index in its chunk")
	require.Contains(t, dls[0].Header.Get(subjects.HeaderReason), h.step.Reason)
	require.Equal(t, subjects.DeadLetterMsgID("bulk-2", subjects.DeadLetterStep(h.cfg.Step.Name, h.cfg.Dataset), 1), dls[0].Header.Get(subjects.HeaderMsgID))
}

// testAckAfterPubAck: while JetStream refuses the step's outputs its
// input is redelivered, never acked; once they can be stored they are,
// and then the input is acked.
func testAckAfterPubAck(t *testing.T, h *harness) {
	h.start()
	unblock := h.blockOutputs()
	seq := h.publish("held-1", h.step.ValidFunc(0), 0)
	h.requireHeld(seq, "its output was not stored")
	require.Zero(t, h.effects())
	unblock()
	h.waitAcked(0, seq)
	require.Equal(t, 1, h.effects())
}

// testPartialPublish: a bulk input whose outputs JetStream takes only in
// part (a publish failing midway, a crash between two outputs) is
// redelivered, and its outputs published again: those stored before are
// dropped by their ids, the others stored. Each record takes effect once.
// (A step whose chunk makes one output message has nothing to store in
// part: it is acked at once.)
func testPartialPublish(t *testing.T, h *harness) {
	h.start()
	const n = 8
	chunk := make([][]byte, n)
	for i := range chunk {
		chunk[i] = h.step.ValidFunc(i)
	}
	unlimit := h.limitOutputs(1)
	seq := h.publish("partial-1", subjects.JoinBulk(chunk), n)
	var held bool
	embeddedtest.WaitFor(t, waitTimeout, "the input acked or redelivered", func() bool {
		info := h.consumerInfo()
		held = info.Delivered.Consumer >= 2
		return held || info.AckFloor.Stream >= seq
	})
	if held {
		require.Less(t, h.effects(), n, "outputs stored beyond the stream's limit")
	}
	unlimit()
	h.waitAcked(0, seq)
	require.Equal(t, n, h.effects(), "outputs stored twice or lost")
}

// testDeadLetterFirst: a bad record is terminated only once its dead
// letter is stored; before that it is redelivered. A chunk with a bad
// record stores its good record's output at once, and again on each
// redelivery, where the server drops it: it takes effect once.
func testDeadLetterFirst(t *testing.T, h *harness) {
	h.start()
	restore := h.deleteStream(subjects.StreamDLQ)
	seq := h.publish("bad-held", h.step.Invalid, 0)
	chunk := h.publish("bad-held-bulk", subjects.JoinBulk([][]byte{h.step.ValidFunc(0), h.step.Invalid}), 2)
	h.requireHeld(seq, "its dead letter was not stored")
	restore()
	h.waitSettled(seq, chunk)
	require.Len(t, h.deadLetters(), 2)
	require.Equal(t, 1, h.effects())
}

// testDerivedIDs: inputs consumed again, as after a crash between the
// pub-acks and the ack (here: a new consumer reading the stream from the
// start), publish outputs with the ids of the first time, which the server
// drops; a sink finds them committed. Effects are counted once.
func testDerivedIDs(t *testing.T, h *harness) {
	h.start()
	seqs := []uint64{
		h.publish("again-1", h.step.ValidFunc(0), 0),
		h.publish("again-2", h.step.ValidFunc(1), 0),
		h.publish("", h.step.ValidFunc(2), 0),
	}
	chunk := [][]byte{h.step.ValidFunc(3), h.step.ValidFunc(4)}
	seqs = append(seqs,
		h.publish("again-bulk", subjects.JoinBulk(chunk), len(chunk)),
		h.publish("", subjects.JoinBulk([][]byte{h.step.ValidFunc(5), h.step.ValidFunc(6)}), 2))
	dead := 0
	if !h.f.NoPermanent {
		seqs = append(seqs, h.publish("again-bad", h.step.Invalid, 0))
		dead = 1
	}
	h.waitSettled(seqs...)
	const n = 7
	require.Equal(t, n, h.effects())
	require.Len(t, h.deadLetters(), dead)
	h.stop()

	require.NoError(t, h.env.JS.DeleteConsumer(t.Context(), h.stream, h.consumer))
	h.start()
	h.waitSettled(seqs...)
	require.Equal(t, n, h.effects(), "inputs consumed again took effect again")
	require.Len(t, h.deadLetters(), dead, "a record dead-lettered again was stored again")
}

// testPermanent: a record the step rejects is dead-lettered once, with
// the reason and the contract's headers, and its message terminated.
func testPermanent(t *testing.T, h *harness) {
	h.start()
	seq := h.publish("bad-1", h.step.Invalid, 0)
	h.waitSettled(seq)
	dls := h.deadLetters()
	require.Len(t, dls, 1)
	h.requireDeadLetter(dls[0], "bad-1", seq, h.step.Invalid, 1)
	require.Contains(t, dls[0].Header.Get(subjects.HeaderReason), h.step.Reason)
	require.Equal(t, h.id, dls[0].Header.Get(subjects.HeaderWorker))
	require.Empty(t, dls[0].Header.Get(subjects.HeaderRecordIndex), "a record-mode message is dead-lettered whole")
	require.Equal(t, subjects.DeadLetterMsgID("bad-1", subjects.DeadLetterStep(h.cfg.Step.Name, h.cfg.Dataset), 0), dls[0].Header.Get(subjects.HeaderMsgID))
	require.Equal(t, uint64(1), h.consumerInfo().Delivered.Consumer, "a permanent failure is not retried")
	require.Zero(t, h.effects())
}

// testTrace: the W3C trace of an input goes on with what it produced (a
// child span of the same trace) and with its dead letter.
func testTrace(t *testing.T, h *harness) {
	h.start()
	const (
		trace    = "4bf92f3577b34da6a3ce929d0e0e4736"
		badTrace = "0af7651916cd43dd8448eb211c80319c"
	)
	seq := h.publishTraced("traced-1", h.step.ValidFunc(0), 0, "00-"+trace+"-00f067aa0ba902b7-01")
	h.waitAcked(0, seq)
	if out := subjects.StreamFor(h.cfg.Step.Output); h.cfg.Step.Output != "" {
		msgs, err := StoredMsgs(t.Context(), h.env.JS, out, ">")
		require.NoError(t, err)
		var traced int
		for _, m := range msgs {
			input := out == h.stream && m.Sequence == seq // the rekey step's
			if !input && traceID(m.Header.Get(subjects.HeaderTraceParent)) == trace {
				traced++
			}
		}
		require.Positive(t, traced, "no output carries the input's trace")
	}
	if h.f.NoPermanent {
		return
	}
	badParent := "00-" + badTrace + "-b7ad6b7169203331-01"
	seq = h.publishTraced("traced-bad", h.step.Invalid, 0, badParent)
	h.waitSettled(seq)
	dls := h.deadLetters()
	require.Len(t, dls, 1)
	require.Equal(t, badParent, dls[0].Header.Get(subjects.HeaderTraceParent), "the dead letter carries the input's traceparent")
}

// traceID is the trace id of a traceparent header, "" if malformed.
func traceID(traceparent string) string {
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 || len(parts[1]) != 32 {
		return ""
	}
	return parts[1]
}

// testTransient: a record failing twice for a transient reason is
// redelivered with backoff and then takes effect, once.
func testTransient(t *testing.T, h *harness) {
	var deliveries atomic.Int64
	h.inject(func(_ context.Context, id string, delivered uint64) error {
		if id != "flaky-1" {
			return nil
		}
		deliveries.Add(1)
		if delivered <= 2 {
			return errInjected
		}
		return nil
	})
	w := h.start()
	seq := h.publish("flaky-1", h.step.ValidFunc(0), 0)
	h.waitAcked(0, seq)
	require.Equal(t, 1, h.effects())
	require.Equal(t, int64(3), deliveries.Load(), "two failures, then success")
	require.GreaterOrEqual(t, w.Snapshot().Counters.Retried, int64(2))
	require.Empty(t, h.deadLetters())
}

// testMaxDeliver: a record failing on every delivery is dead-lettered
// whole on its MaxDeliver-th, with the failure as its reason, and
// terminated; the worker goes on with the next.
func testMaxDeliver(t *testing.T, h *harness) {
	h.inject(func(_ context.Context, id string, _ uint64) error {
		if id == "poison-1" || id == "poison-bulk" {
			return errInjected
		}
		return nil
	})
	w := h.start()
	poison := h.step.ValidFunc(0)
	seq := h.publish("poison-1", poison, 0)
	h.waitSettled(seq)
	dls := h.deadLetters()
	require.Len(t, dls, 1)
	maxDeliver := h.cfg.Consumer.MaxDeliver
	h.requireDeadLetter(dls[0], "poison-1", seq, poison, maxDeliver)
	reason := dls[0].Header.Get(subjects.HeaderReason)
	require.Contains(t, reason, fmt.Sprintf("gave up after %d deliveries", maxDeliver))
	require.Contains(t, reason, errInjected.Error())
	require.Zero(t, h.effects())

	// A bulk message failing on every delivery is dead-lettered whole,
	// with its record count.
	chunk := subjects.JoinBulk([][]byte{h.step.ValidFunc(1), h.step.ValidFunc(2)})
	seq = h.publish("poison-bulk", chunk, 2)
	h.waitSettled(seq)
	dls = h.deadLetters()
	require.Len(t, dls, 2)
	h.requireDeadLetter(dls[1], "poison-bulk", seq, chunk, maxDeliver)
	require.Equal(t, "2", dls[1].Header.Get(subjects.HeaderRecords), "a whole bulk message's dead letter says how many records it holds")
	require.Empty(t, dls[1].Header.Get(subjects.HeaderRecordIndex))

	seq = h.publish("after-1", h.step.ValidFunc(3), 0)
	h.waitAcked(0, seq)
	require.Equal(t, 1, h.effects())
	require.NoError(t, w.Err())
}

// testMaxDeliverOutputs: outputs JetStream refuses on every delivery are
// a transient failure like any other (docs/wire.md, settling, step 5): on
// the input's MaxDeliver-th delivery it is dead-lettered whole, with the
// publish error as its reason, and terminated.
func testMaxDeliverOutputs(t *testing.T, h *harness) {
	h.start()
	h.blockOutputs()
	input := h.step.ValidFunc(0)
	seq := h.publish("stuck-1", input, 0)
	h.waitSettled(seq)
	dls := h.deadLetters()
	require.Len(t, dls, 1)
	maxDeliver := h.cfg.Consumer.MaxDeliver
	h.requireDeadLetter(dls[0], "stuck-1", seq, input, maxDeliver)
	require.Contains(t, dls[0].Header.Get(subjects.HeaderReason), fmt.Sprintf("gave up after %d deliveries", maxDeliver))
	require.Zero(t, h.effects())
}

// testPanic: a handler that panics is rebuilt (NewHandlerFunc again); the
// record is redelivered to the new one and takes effect once, and the
// worker goes on.
func testPanic(t *testing.T, h *harness) {
	h.inject(func(_ context.Context, id string, delivered uint64) error {
		if id == "crash-1" && delivered == 1 {
			panic("workertest: injected panic")
		}
		return nil
	})
	w := h.start()
	require.Equal(t, int64(1), h.builds.Load())
	seq := h.publish("crash-1", h.step.ValidFunc(0), 0)
	h.waitAcked(0, seq)
	require.Equal(t, 1, h.effects())
	require.Equal(t, int64(2), h.builds.Load(), "the handler rebuilt after the crash")
	require.Equal(t, int64(1), w.Snapshot().Counters.Crashes)

	seq = h.publish("after-1", h.step.ValidFunc(1), 0)
	h.waitAcked(1, seq)
	require.Equal(t, 2, h.effects())
	select {
	case <-w.Stopped():
		require.FailNow(t, "the worker stopped after a crash", "%v", w.Err())
	default:
	}
	require.Empty(t, h.deadLetters())
}

// testDrain: Stop while a record is in the handler waits for it: it takes
// effect and is acked before Stop returns. What the stopped worker had
// not taken is there for the next one: nothing is lost.
func testDrain(t *testing.T, h *harness) {
	entered, release := h.hold("slow-1")
	w := h.start()
	slow := h.publish("slow-1", h.step.ValidFunc(0), 0)
	embeddedtest.WaitOrTimeout(t, entered, waitTimeout, "the record in the handler")
	queued := []uint64{h.publish("queued-1", h.step.ValidFunc(1), 0), h.publish("queued-2", h.step.ValidFunc(2), 0)}

	stopHeld(t, w, release)
	// No worker runs now: only the drain can have acked it.
	h.waitAcked(0, slow)

	h.start()
	h.waitAcked(0, append(queued, slow)...)
	require.Equal(t, 3, h.effects())
	require.Empty(t, h.deadLetters())
}

// stopHeld stops w while its handler holds a record: once w drains, the
// record is released, and the drain must finish within stopTimeout.
func stopHeld(t *testing.T, w *workers.Worker, release chan struct{}) {
	t.Helper()
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		stopped <- w.Stop(ctx)
	}()
	embeddedtest.WaitFor(t, waitTimeout, "the worker draining", func() bool { return w.Snapshot().State == subjects.StateDraining })
	close(release)
	require.NoError(t, <-stopped, "the drain finished within %s", stopTimeout)
	require.NoError(t, w.Err())
}

// testStopMidStream: a worker stopped while inputs stream in leaves
// nothing half done: every input it acked has its effect, and the next
// worker takes the rest; each record takes effect once. On the Go runtime
// the stop comes while input 20 is in the handler (held there until the
// worker drains), with most inputs still in the stream (the subtest's
// MaxAckPending is 8); a step outside it is stopped at its first effect.
func testStopMidStream(t *testing.T, h *harness) {
	const n, at = 200, 20
	entered, release := h.hold("stream-" + strconv.Itoa(at))
	w := h.start()
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		m := nats.NewMsg(h.step.Subject)
		m.Data = h.step.ValidFunc(i)
		m.Header.Set(subjects.HeaderMsgID, "stream-"+strconv.Itoa(i))
		f, err := h.env.JS.PublishMsgAsync(m)
		require.NoError(t, err)
		futures = append(futures, f)
	}
	if w != nil {
		embeddedtest.WaitOrTimeout(t, entered, waitTimeout, "input 20 in the handler")
		stopHeld(t, w, release)
	} else {
		embeddedtest.WaitFor(t, waitTimeout, "a first effect", func() bool { return h.effects() > 0 })
		h.stop()
	}
	seqs := make([]uint64, 0, n)
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs = append(seqs, ack.Sequence)
		case err := <-f.Err():
			require.NoError(t, err)
		}
	}
	if w != nil {
		// The server takes acks in on a queue of its own: the ack floor
		// may lag the stopped worker's last acks for a moment.
		acked := int(w.Snapshot().Counters.Acked)
		require.Greater(t, acked, at, "the input in the handler and those before it acked by the drain")
		require.Less(t, acked, n, "the drain went on fetching")
		embeddedtest.WaitFor(t, waitTimeout, "the drain's acks", func() bool { return settled(h.consumerInfo(), seqs...) >= acked })
	}
	acked := settled(h.consumerInfo(), seqs...)
	require.GreaterOrEqual(t, h.effects(), acked, "an input was acked before its effect was stored")

	h.start()
	h.waitAcked(0, seqs...)
	require.Equal(t, n, h.effects(), "a record took effect twice, or not at all")
	require.Empty(t, h.deadLetters())
}

// hold keeps the first delivery of input id in the handler until release
// is closed (or the handler's context ends); entered is closed once it is
// there.
func (h *harness) hold(id string) (entered <-chan struct{}, release chan struct{}) {
	in, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.inject(func(ctx context.Context, got string, delivered uint64) error {
		if got != id || delivered != 1 {
			return nil
		}
		once.Do(func() { close(in) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return in, release
}

// requireDeadLetter checks the contract's headers of dead letter m of the
// input id at seq (delivered deliveries times) and its body.
func (h *harness) requireDeadLetter(m *jetstream.RawStreamMsg, id string, seq uint64, body []byte, deliveries int) {
	h.t.Helper()
	t := h.t
	require.Equal(t, subjects.DeadLetter(h.cfg.Step.Name, h.cfg.Dataset), m.Subject)
	require.Equal(t, string(body), string(m.Data))
	hd := m.Header
	require.Equal(t, h.storedSubject(seq), hd.Get(subjects.HeaderOrigSubject), "original subject")
	require.Equal(t, h.stream, hd.Get(subjects.HeaderOrigStream), "original stream")
	require.Equal(t, strconv.FormatUint(seq, 10), hd.Get(subjects.HeaderOrigSeq), "original stream sequence")
	require.Equal(t, id, hd.Get(subjects.HeaderOrigMsgID), "original message id")
	require.Equal(t, strconv.Itoa(deliveries), hd.Get(subjects.HeaderDeliveries), "delivery count")
	require.Equal(t, h.consumer, hd.Get(subjects.HeaderConsumer), "consumer")
	require.Equal(t, h.cfg.Step.Name, hd.Get(subjects.HeaderStep), "failing step")
	require.NotEmpty(t, hd.Get(subjects.HeaderReason), "reason")
	require.NotEmpty(t, hd.Get(subjects.HeaderFailedAt), "failed at")
}

// storedSubject is the subject the input at seq is stored on: the one
// published to, or what the stream's subject transform made of it (a clean
// record's partition).
func (h *harness) storedSubject(seq uint64) string {
	h.t.Helper()
	s, err := h.env.JS.Stream(h.t.Context(), h.stream)
	require.NoError(h.t, err)
	m, err := s.GetMsg(h.t.Context(), seq)
	require.NoError(h.t, err)
	return m.Subject
}
