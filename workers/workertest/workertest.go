package workertest

import (
	"context"
	"slices"
	"strconv"
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
)

// Env is one subtest's world: a JetStream server of its own, in a temp
// dir, and a connection to it.
type Env struct {
	URL  string
	Conn *nats.Conn
	JS   jetstream.JetStream
	// Log writes to the test's log.
	Log zerolog.Logger
}

// NewStepFunc builds the step under test on env. Each subtest calls it
// once, on a server of its own; what it starts beside the worker (lookup
// tables, an aggregator's intake) it stops with t.Cleanup.
type NewStepFunc func(t *testing.T, env *Env) Step

// Step is a step's adapter: how to build it and feed it, and how to see
// what it did.
type Step struct {
	// Config is the step's worker: Step, Dataset, NewHandlerFunc or
	// NewBatchHandlerFunc, and whatever else the step sets (WaitFunc,
	// Partition, Streams, Middleware). The suite sets Conn and Logger, a
	// middleware of its own innermost, and short delivery settings where
	// they are zero: AckWait 2s, MaxDeliver 5, retry backoff 20-200ms,
	// restart backoff 10-100ms, RepublishFor 50ms, DrainTimeout 10s. Some
	// subtests change MaxDeliver, MaxAckPending and FetchBatch.
	Config workers.Config
	// Subject is where inputs are published; default the step's input
	// subject for the dataset.
	Subject string
	// ValidFunc returns valid record i. Records of different i are
	// different records (keys), and each has exactly one effect.
	ValidFunc func(i int) []byte
	// Invalid is a record the step rejects with a permanent error, and
	// Reason a part of the reason its dead letter must give. Unused with
	// Features.NoPermanent.
	Invalid []byte
	Reason  string
	// EffectsFunc counts the valid records whose effect is stored: for a
	// step that publishes, the records on its outputs (see OutputRecords);
	// for a sink, what it committed. It is called often while the suite
	// waits.
	EffectsFunc func(ctx context.Context) (int, error)
	// StartFunc, when set, runs a step that is not on the Go runtime (a
	// program in another language, in a process of its own) as worker
	// cfg.ID with cfg's delivery settings, and returns once it consumes;
	// stop drains it, and it stops when the test ends in any case (its
	// own t.Cleanup). Config then only names the step and its settings
	// (Step, Dataset, Consumer, Streams; the suite makes the streams), and
	// the subtests that inject faults into the Go handler chain
	// (Transient, MaxDeliver, Panic, Drain) are skipped.
	StartFunc func(t *testing.T, cfg workers.Config) (stop func())
}

// Features says which parts of the contract apply to a step. A step that
// publishes nothing (its Step has no Output: the aggregator commits state
// instead) skips AckAfterPubAck, PartialPublish and MaxDeliverOutputs,
// and its effects are what EffectsFunc says it committed.
type Features struct {
	// NoPermanent: no input fails the step permanently, so Permanent,
	// DeadLetterFirst and the bad record of Bulk do not apply.
	NoPermanent bool
}

// Run runs the contract suite against the step newStep builds; see the
// package doc for what each subtest checks. Subtests run in parallel, each
// on a server of its own.
func Run(t *testing.T, newStep NewStepFunc, f Features) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
		// tune sets what the subtest needs of the worker's config.
		tune func(cfg *workers.Config)
		skip func(h *harness) string
	}{
		{name: "Record", run: testRecord},
		{name: "Bulk", run: testBulk},
		{name: "AckAfterPubAck", run: testAckAfterPubAck, tune: manyDeliveries, skip: noOutputs},
		{name: "PartialPublish", run: testPartialPublish, tune: manyDeliveries, skip: noOutputs},
		{name: "DeadLetterFirst", run: testDeadLetterFirst, tune: manyDeliveries, skip: noPermanent},
		{name: "DerivedIDs", run: testDerivedIDs},
		{name: "Permanent", run: testPermanent, skip: noPermanent},
		{name: "Trace", run: testTrace},
		{name: "Transient", run: testTransient, skip: goOnly},
		{name: "MaxDeliver", run: testMaxDeliver, tune: func(cfg *workers.Config) { cfg.Consumer.MaxDeliver = 3 }, skip: goOnly},
		{name: "MaxDeliverOutputs", run: testMaxDeliverOutputs, tune: func(cfg *workers.Config) { cfg.Consumer.MaxDeliver = 3 }, skip: noOutputs},
		{name: "Panic", run: testPanic, skip: goOnly},
		{name: "Drain", run: testDrain, skip: goOnly},
		{name: "StopMidStream", run: testStopMidStream, tune: func(cfg *workers.Config) {
			// A small window: the stop finds inputs in flight and more
			// waiting in the stream.
			cfg.Consumer.MaxAckPending, cfg.FetchBatch = 8, 4
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, newStep, f, tt.tune)
			if tt.skip != nil {
				if why := tt.skip(h); why != "" {
					t.Skip(why)
				}
			}
			tt.run(t, h)
		})
	}
}

// manyDeliveries lets a message be redelivered for as long as a subtest
// keeps its outputs or dead letters from being stored, far from the
// delivery on which it would be dead-lettered whole (MaxDeliverOutputs).
func manyDeliveries(cfg *workers.Config) { cfg.Consumer.MaxDeliver = 100 }

// goOnly skips a subtest that injects faults into the Go handler chain.
func goOnly(h *harness) string {
	if h.step.StartFunc != nil {
		return "injects faults into the Go runtime's handler chain; the step runs outside it"
	}
	return ""
}

func noOutputs(h *harness) string {
	if h.cfg.Step.Output == "" {
		return "the step publishes nothing"
	}
	return ""
}

func noPermanent(h *harness) string {
	if h.f.NoPermanent {
		return "Features.NoPermanent"
	}
	return ""
}

// harness is one subtest's step: its server, config and observations.
type harness struct {
	t    *testing.T
	env  *Env
	step Step
	f    Features
	cfg  workers.Config
	// stream and consumer are where the step's inputs wait.
	stream, consumer string
	faults           faults
	// builds counts the step's handlers built: one, and one more after
	// each crash.
	builds atomic.Int64
	// w is the running worker on the Go runtime; id is the running
	// worker's id, and stopFunc stops it.
	w        *workers.Worker
	id       string
	stopFunc func()
}

func setup(t *testing.T, newStep NewStepFunc, f Features, tune func(*workers.Config)) *harness {
	t.Helper()
	srv := embeddedtest.Server(t)
	nc, js := embeddedtest.Connect(t, srv.ClientURL())
	env := &Env{URL: srv.ClientURL(), Conn: nc, JS: js, Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)}
	h := &harness{t: t, env: env, f: f}
	h.step = newStep(t, env)
	require.NotNil(t, h.step.ValidFunc, "Step.ValidFunc")
	require.NotNil(t, h.step.EffectsFunc, "Step.EffectsFunc")
	cfg := h.step.Config
	cfg.Conn, cfg.Logger = nc, env.Log
	setDefault(&cfg.Consumer.AckWait, 2*time.Second)
	setDefault(&cfg.Consumer.MaxDeliver, 5)
	setDefault(&cfg.RetryBackoffMin, 20*time.Millisecond)
	setDefault(&cfg.RetryBackoffMax, 200*time.Millisecond)
	setDefault(&cfg.RestartBackoffMin, 10*time.Millisecond)
	setDefault(&cfg.RestartBackoffMax, 100*time.Millisecond)
	setDefault(&cfg.RepublishFor, 50*time.Millisecond)
	setDefault(&cfg.DrainTimeout, 10*time.Second)
	if tune != nil {
		tune(&cfg)
	}
	if nh := cfg.NewHandlerFunc; nh != nil {
		cfg.NewHandlerFunc = func() (workers.Handler, error) { h.builds.Add(1); return nh() }
	}
	if nb := cfg.NewBatchHandlerFunc; nb != nil {
		cfg.NewBatchHandlerFunc = func() (workers.BatchHandler, error) { h.builds.Add(1); return nb() }
	}
	cfg.Middleware = append(slices.Clip(cfg.Middleware), h.faults.middleware())
	h.cfg = cfg
	if h.step.Subject == "" {
		h.step.Subject = cfg.Step.InputSubject(cfg.Dataset)
	}
	if h.step.StartFunc != nil {
		require.NoError(t, subjects.Ensure(t.Context(), js, cfg.Streams))
		ccfg, err := subjects.Consumer(cfg.Step, cfg.Dataset, cfg.Consumer)
		require.NoError(t, err)
		h.stream, h.consumer = subjects.StreamFor(cfg.Step.Input), ccfg.Durable
		return h
	}
	w, err := workers.New(cfg)
	require.NoError(t, err, "the step's worker config")
	def, err := w.ConsumerDef()
	require.NoError(t, err)
	h.stream, h.consumer = def.Stream, def.Config.Durable
	return h
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// start runs a new worker of the step (on the same durable consumer as any
// before it) until the test ends or stop. It returns the worker on the Go
// runtime, nil for a step that runs outside it.
func (h *harness) start() *workers.Worker {
	h.t.Helper()
	if h.step.StartFunc != nil {
		cfg := h.cfg
		cfg.ID = workers.NewWorkerID()
		h.id, h.stopFunc = cfg.ID, h.step.StartFunc(h.t, cfg)
		return nil
	}
	w := StartWorker(h.t, h.cfg)
	h.w, h.id = w, w.ID()
	h.stopFunc = func() {
		StopWorker(h.t, w)
		require.NoError(h.t, w.Err())
	}
	return w
}

// stop drains the running worker.
func (h *harness) stop() {
	h.t.Helper()
	h.stopFunc()
}

// publish sends data as one message to the step's input and returns its
// stream sequence: a bulk message of n records when n > 0, and without a
// Nats-Msg-Id when id is empty.
func (h *harness) publish(id string, data []byte, n int) uint64 {
	h.t.Helper()
	return h.publishTraced(id, data, n, "")
}

// publishTraced is publish with a traceparent header, unless it is empty.
func (h *harness) publishTraced(id string, data []byte, n int, traceparent string) uint64 {
	h.t.Helper()
	m := nats.NewMsg(h.step.Subject)
	m.Data = data
	if id != "" {
		m.Header.Set(subjects.HeaderMsgID, id)
	}
	if n > 0 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(n))
	}
	if traceparent != "" {
		m.Header.Set(subjects.HeaderTraceParent, traceparent)
	}
	ack, err := h.env.JS.PublishMsg(h.t.Context(), m)
	require.NoError(h.t, err)
	require.False(h.t, ack.Duplicate, "input %s published twice", id)
	return ack.Sequence
}

// consumerInfo is the step's consumer as the server sees it now.
func (h *harness) consumerInfo() *jetstream.ConsumerInfo {
	h.t.Helper()
	c, err := h.env.JS.Consumer(h.t.Context(), h.stream, h.consumer)
	require.NoError(h.t, err)
	info, err := c.Info(h.t.Context())
	require.NoError(h.t, err)
	return info
}

// settled counts the inputs among seqs the consumer has acked or
// terminated: those at or below its ack floor.
func settled(info *jetstream.ConsumerInfo, seqs ...uint64) int {
	n := 0
	for _, s := range seqs {
		if s <= info.AckFloor.Stream {
			n++
		}
	}
	return n
}

// waitAcked waits until every input of seqs, each one valid record, is
// acked, checking all along that none was acked before its effect was
// stored: effects are read after the ack floor, and only grow. before is
// the effects of inputs published earlier.
func (h *harness) waitAcked(before int, seqs ...uint64) {
	h.t.Helper()
	embeddedtest.WaitFor(h.t, waitTimeout, "the inputs acked", func() bool {
		n := settled(h.consumerInfo(), seqs...)
		require.GreaterOrEqual(h.t, h.effects()-before, n, "an input was acked before its effect was stored")
		return n == len(seqs)
	})
}

// waitSettled waits until every input of seqs is acked or terminated.
func (h *harness) waitSettled(seqs ...uint64) {
	h.t.Helper()
	embeddedtest.WaitFor(h.t, waitTimeout, "the inputs settled", func() bool { return settled(h.consumerInfo(), seqs...) == len(seqs) })
}

// effects is what Step.EffectsFunc counts now.
func (h *harness) effects() int {
	h.t.Helper()
	n, err := h.step.EffectsFunc(h.t.Context())
	require.NoError(h.t, err)
	return n
}

// deadLetters are the step's dead letters of its dataset.
func (h *harness) deadLetters() []*jetstream.RawStreamMsg {
	h.t.Helper()
	msgs, err := StoredMsgs(h.t.Context(), h.env.JS, subjects.StreamDLQ, subjects.DeadLetter(h.cfg.Step.Name, h.cfg.Dataset))
	require.NoError(h.t, err)
	return msgs
}

// blockOutputs makes JetStream refuse what the step publishes until
// unblock is called. An output stream of its own is deleted (a stream
// missing, as before setup); a step writing to the stream it reads (the
// rekey step) finds it full instead (see limitOutputs).
func (h *harness) blockOutputs() (unblock func()) {
	h.t.Helper()
	if out := subjects.StreamFor(h.cfg.Step.Output); out != h.stream {
		return h.deleteStream(out)
	}
	return h.limitOutputs(0)
}

// limitOutputs makes the step's output stream take n more outputs and
// refuse any beyond, until unlimit is called: it is limited to what it
// holds, the n, and the one input about to be published if the step
// reads the stream it writes.
func (h *harness) limitOutputs(n int) (unlimit func()) {
	h.t.Helper()
	ctx, js := h.t.Context(), h.env.JS
	out := subjects.StreamFor(h.cfg.Step.Output)
	s, err := js.Stream(ctx, out)
	require.NoError(h.t, err)
	info, err := s.Info(ctx)
	require.NoError(h.t, err)
	was := info.Config
	limited := was
	limited.Discard, limited.MaxMsgs = jetstream.DiscardNew, int64(info.State.Msgs)+int64(n)
	if out == h.stream {
		limited.MaxMsgs++
	}
	require.Positive(h.t, limited.MaxMsgs, "a stream limit of 0 is no limit")
	_, err = js.UpdateStream(ctx, limited)
	require.NoError(h.t, err)
	return func() {
		_, err := js.UpdateStream(ctx, was)
		require.NoError(h.t, err)
	}
}

// deleteStream deletes stream; restore makes it again as the worker does.
func (h *harness) deleteStream(stream string) (restore func()) {
	h.t.Helper()
	ctx := h.t.Context()
	require.NoError(h.t, h.env.JS.DeleteStream(ctx, stream))
	return func() { require.NoError(h.t, subjects.Ensure(ctx, h.env.JS, h.cfg.Streams)) }
}

// requireHeld waits until the input at seq is redelivered, failing the
// test if it is acked or terminated first, and checks it took no effect.
func (h *harness) requireHeld(seq uint64, what string) {
	h.t.Helper()
	embeddedtest.WaitFor(h.t, waitTimeout, "the input redelivered", func() bool {
		info := h.consumerInfo()
		require.Less(h.t, info.AckFloor.Stream, seq, "input acked although %s", what)
		return info.NumRedelivered > 0
	})
}

// inject sets what happens to deliveries before the handler sees them.
func (h *harness) inject(f faultFunc) { h.faults.set(f) }
