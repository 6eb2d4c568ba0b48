package workers

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/subjects"
)

// Worker is one actor: a step on a dataset, with its durable consumer as
// mailbox. Its methods are safe for concurrent use.
type Worker struct {
	cfg        Config
	log        zerolog.Logger
	js         jetstream.JetStream
	outSubject string
	consumer   string
	started    time.Time

	stats   counters
	lastErr atomic.Pointer[string]
	state   atomic.Pointer[string]
	// waiting is what WaitFunc last said the worker waits for.
	waiting atomic.Pointer[string]
	// lastReconnect is when the connection last came back.
	lastReconnect atomic.Pointer[time.Time]

	maxDeliver int
	// dlqLimit is the largest dead letter JF_DLQ takes (subjects.DeadLetterLimit).
	dlqLimit int64
	// reporter is the handler's ContractReporter, if it is one.
	reporter atomic.Pointer[ContractReporter]
	// handlerSeconds is this worker's series of the handler latency histogram.
	handlerSeconds prometheus.Observer
	// stall bounds how long a publish waits for room in the async window:
	// a full window is backpressure, not an error.
	stall jetstream.PublishOpt

	iterMu sync.Mutex
	iter   jetstream.MessagesContext
	paused atomic.Bool
	wake   chan struct{}

	// lines holds the records of the batch in hand (see gather).
	lines [][]byte
	// Scratch of publishOutputs, which only the fetch loop calls.
	groups  []outputGroup
	groupOf []int
	sub     [][]byte

	svc startstop.Service
}

type counters struct {
	messages, records, outputs, deadLettered, retried, redelivered, crashes, acked atomic.Int64
	republished                                                                    atomic.Int64
	inFlight                                                                       atomic.Int64
}

// New checks cfg and builds a worker. It does no I/O.
func New(cfg Config) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Outputs of every message the server lets the worker hold may be in
	// flight at once.
	js, err := jetstream.New(cfg.Conn, jetstream.WithPublishAsyncMaxPending(max(4*cfg.FetchBatch, cfg.Consumer.MaxAckPending)),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	w := &Worker{
		cfg:      cfg,
		js:       js,
		consumer: cfg.consumerName(),
		wake:     make(chan struct{}, 1),
		stall:    jetstream.WithStallWait(cfg.HandlerTimeout / 2),

		handlerSeconds: metrics.HandlerSeconds.WithLabelValues(cfg.Step.Name, cfg.Dataset),
	}
	if cfg.Step.Output != "" {
		w.outSubject = cfg.Step.OutputSubject(cfg.Dataset)
	}
	w.log = cfg.Logger.With().Str("worker", cfg.ID).Str("step", cfg.Step.Name).Str("dataset", cfg.Dataset).Logger()
	w.setState(subjects.StateStarting)
	return w, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

func (w *Worker) setState(s string) { w.state.Store(&s) }

func (w *Worker) setLastErr(err error) {
	s := err.Error()
	w.lastErr.Store(&s)
}

// Start runs the worker in the background and returns once its consumer
// is bound, or with the error that kept it from starting.
func (w *Worker) Start(ctx context.Context) error {
	err := w.svc.Start(ctx, w.run)
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: worker %s already started", ErrInvalidConfig, w.cfg.ID)
	}
	return err
}

// Stop drains the worker and waits until it has stopped or ctx expires.
// It is idempotent and safe without Start.
func (w *Worker) Stop(ctx context.Context) error { return w.svc.Stop(ctx) }

// Stopped is closed once a started worker has stopped.
func (w *Worker) Stopped() <-chan struct{} { return w.svc.Stopped() }

// Err is the error a started worker stopped with, nil for a clean stop.
func (w *Worker) Err() error { return w.svc.Err() }

// Run runs the worker until ctx is cancelled, then drains and returns nil.
// It returns an error only when the worker cannot go on (its consumer was
// deleted, its handler crashed too often, it could not be built).
func (w *Worker) Run(ctx context.Context) error {
	return w.run(ctx, func() {})
}

// run is the worker's life: bind its consumer, then fetch, handle and
// settle until ctx is cancelled, then drain. Beside the fetch loop run
// the settler (acks after pub-acks), the heartbeats, the connection
// watch and the drain timer, in one errgroup.
func (w *Worker) run(ctx context.Context, startedFunc func()) error {
	w.started = time.Now()
	cons, err := w.bind(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	r, err := w.newRouter()
	if err != nil {
		return err
	}
	// A worker that waits opens its iterator once it no longer waits:
	// until then it holds no message.
	if w.cfg.WaitFunc == nil {
		if err := w.openIter(cons); err != nil {
			return err
		}
	}
	defer w.stopIter()

	// Handlers and the settler run under hardCtx, which outlives ctx by
	// the drain timeout: cancelling ctx stops fetching, not in-flight work.
	hardCtx, hardCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hardCancel(startstop.ErrStopped)
	// bgCtx ends the heartbeats, the connection watch and the drain timer
	// once the settler has settled the last message, after the fetch loop.
	bgCtx, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer bgCancel()
	s := newSettler(w)
	var g errgroup.Group
	g.Go(func() error {
		defer bgCancel()
		s.run(hardCtx)
		return nil
	})
	g.Go(func() error { w.heartbeats(bgCtx); return nil })
	g.Go(func() error { w.watchConn(bgCtx); return nil })
	g.Go(func() error { w.drainOnStop(ctx, bgCtx, hardCancel); return nil })

	running := func() {
		w.setState(subjects.StateRunning)
		ev := w.log.Info()
		if w.cfg.QuietStart {
			ev = w.log.Debug()
		}
		ev.Str("consumer", w.consumer).Str("output", w.outSubject).Msg("worker started")
	}
	if w.cfg.WaitFunc == nil {
		running()
	}
	startedFunc()
	var runErr error
	if w.cfg.WaitFunc != nil {
		if runErr = w.waitReady(ctx); runErr == nil && ctx.Err() == nil {
			if runErr = w.openIter(cons); runErr == nil {
				running()
			}
		} else if runErr == nil {
			runErr = ctx.Err() // stopping: open nothing
		}
	}
	if runErr == nil {
		runErr = w.fetchLoop(ctx, hardCtx, cons, r, s)
	} else if ctx.Err() != nil {
		runErr = nil // stopped while waiting
	}
	w.stopIter()
	s.close()
	_ = g.Wait()
	// Acks are fire-and-forget; a flush makes sure the server has them
	// before the worker reports itself stopped.
	if err := w.cfg.Conn.FlushTimeout(2 * time.Second); err != nil {
		w.log.Warn().Err(err).Msg("flush acks")
	}
	w.setState(subjects.StateStopped)
	w.beat() // goodbye beat: the supervisor can mark the worker gone at once
	if runErr != nil {
		w.setLastErr(runErr)
		return runErr
	}
	w.log.Info().Int64("acked", w.stats.acked.Load()).Msg("worker stopped")
	return nil
}

// waitReady runs WaitFunc, if any, in state waiting: the worker beats and
// answers control requests, and holds no message.
func (w *Worker) waitReady(ctx context.Context) error {
	if w.cfg.WaitFunc == nil {
		return nil
	}
	err := w.cfg.WaitFunc(ctx, func(reason string) {
		w.waiting.Store(&reason)
		w.setState(subjects.StateWaiting)
		w.log.Warn().Str("waiting_for", reason).Msg("not ready: consuming nothing until then")
		w.beat() // the fleet sees why at once, not at the next beat
	})
	if w.waiting.Swap(nil) != nil && err == nil {
		w.log.Info().Msg("ready: what the step waited for is there")
	}
	return err
}

// Waiting is what the worker waits for before it consumes anything (see
// Config.WaitFunc), "" when it does not wait.
func (w *Worker) Waiting() string {
	if r := w.waiting.Load(); r != nil {
		return *r
	}
	return ""
}

// drainOnStop drains the iterator once ctx is cancelled (buffered
// messages are still handled), then after DrainTimeout cancels whatever
// still runs; it returns early when done ends (all is settled).
func (w *Worker) drainOnStop(ctx, done context.Context, hardCancel context.CancelCauseFunc) {
	select {
	case <-ctx.Done():
	case <-done.Done():
		return
	}
	w.setState(subjects.StateDraining)
	w.log.Info().Msg("draining")
	w.drainIter()
	if backoff.Sleep(done, w.cfg.DrainTimeout) {
		w.log.Warn().Dur("drain_timeout", w.cfg.DrainTimeout).Msg("drain timed out; cancelling in-flight work, it will be redelivered")
		hardCancel(startstop.ErrStopped)
		w.stopIter()
	}
}

// ConsumerDef is the durable consumer the worker binds to, on its
// input stream: what `jetfleet setup` creates for it.
func (w *Worker) ConsumerDef() (subjects.ConsumerDef, error) {
	ccfg, err := w.cfg.consumerConfig()
	if err != nil {
		return subjects.ConsumerDef{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	switch len(w.cfg.FilterSubjects) {
	case 0:
	case 1: // the server's single-filter path is the fast one
		ccfg.FilterSubject, ccfg.FilterSubjects = w.cfg.FilterSubjects[0], nil
	default:
		ccfg.FilterSubject, ccfg.FilterSubjects = "", w.cfg.FilterSubjects
	}
	return subjects.ConsumerDef{Stream: subjects.StreamFor(w.cfg.Step.Input), Config: ccfg}, nil
}

// bind ensures the streams and the durable consumer, retrying with backoff
// while JetStream is unreachable, so a worker may start before its server.
// A bind-only worker (Streams.BindOnly) creates nothing and gives up at
// once when something is missing or breaks the contract.
func (w *Worker) bind(ctx context.Context) (jetstream.Consumer, error) {
	def, err := w.ConsumerDef()
	if err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		cons, err := w.tryBind(ctx, def)
		if err == nil {
			w.maxDeliver = cons.CachedInfo().Config.MaxDeliver
			w.dlqLimit = subjects.DeadLetterLimit(ctx, w.js)
			if attempt > 1 {
				w.log.Info().Int("attempts", attempt).Msg("JetStream reachable")
			}
			return cons, nil
		}
		if errors.Is(err, subjects.ErrStreamConflict) || errors.Is(err, subjects.ErrConsumerConflict) || errors.Is(err, subjects.ErrNotSetUp) {
			return nil, err
		}
		w.setLastErr(err)
		delay := backoff.Delay(200*time.Millisecond, w.cfg.ConnectRetryMax, attempt)
		w.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Str("url", w.cfg.Conn.ConnectedUrlRedacted()).Msg("waiting for JetStream")
		if !backoff.Sleep(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

func (w *Worker) tryBind(ctx context.Context, def subjects.ConsumerDef) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := subjects.Ensure(ctx, w.js, w.cfg.Streams); err != nil {
		return nil, err
	}
	if w.cfg.Streams.BindOnly {
		return subjects.BindConsumer(ctx, w.js, def.Stream, def.Config)
	}
	cons, err := w.js.CreateOrUpdateConsumer(ctx, def.Stream, def.Config)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", def.Config.Durable, def.Stream, err)
	}
	return cons, nil
}
