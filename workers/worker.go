package workers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/subjects"
)

// Config configures one [Worker]: one step on one dataset.
type Config struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Step is the step this worker runs; it must consume a stage. Required.
	Step subjects.Step
	// Dataset is the dataset the worker serves. Required.
	Dataset string
	// NewHandlerFunc builds the handler; it is called again after a crash,
	// so a handler never runs with the state a panic left behind. One of
	// NewHandlerFunc and NewBatchHandlerFunc is required.
	NewHandlerFunc func() (Handler, error)
	// NewBatchHandlerFunc builds a batch handler, for sinks.
	NewBatchHandlerFunc func() (BatchHandler, error)
	// BatchWait is how long a batch handler's worker gathers messages into
	// a batch once it holds one: the batch goes to the handler when full
	// (FetchBatch) or BatchWait after its first message. Default 5ms.
	BatchWait time.Duration
	// ID names this worker in heartbeats and logs. Default: host and a
	// random suffix.
	ID string
	// Version is reported in heartbeats.
	Version string
	// Logger gets the worker's structured log lines.
	Logger zerolog.Logger

	// Partitions, when above 0, makes the worker consume only partition
	// Partition (of Partitions) of its clean-stage input, through that
	// partition's durable consumer (see subjects.PartitionConsumer).
	Partition  int
	Partitions int

	// Consumer tunes delivery (AckWait, MaxDeliver, MaxAckPending).
	Consumer subjects.ConsumerOptions
	// Streams is passed to subjects.Ensure at start-up.
	Streams subjects.StreamOptions
	// FilterSubjects, when set, are the subjects the consumer reads instead
	// of the step's input subject for Dataset (a webhook deliverer reads
	// the alerts of the rules that name its target).
	FilterSubjects []string

	// FetchBatch is how many messages one pull asks for. Default 256.
	FetchBatch int
	// HandlerTimeout bounds the handling of one message. Default 80% of
	// AckWait, so JetStream does not redeliver work still in progress.
	HandlerTimeout time.Duration
	// RetryBackoffMin and RetryBackoffMax bound the redelivery delay of a
	// transient failure, which doubles per delivery. Default 500ms, 30s.
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration
	// RestartBackoffMin and RestartBackoffMax bound the pause before a
	// crashed handler is rebuilt. Default 100ms, 5s.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// MaxRestarts crashes within RestartWindow stop the worker with
	// ErrTooManyRestarts. Default 20 in 1 minute.
	MaxRestarts   int
	RestartWindow time.Duration
	// DrainTimeout bounds the graceful part of a stop; then handlers are
	// cancelled. Default 4s.
	DrainTimeout time.Duration
	// HeartbeatInterval is how often the worker beats. Default 5s.
	HeartbeatInterval time.Duration
	// ConnectRetryMax caps the backoff between attempts to reach JetStream
	// at start-up. Default 10s.
	ConnectRetryMax time.Duration
	// PullHeartbeat is how often the server confirms a waiting pull. Two
	// missed confirmations make the worker pull again: that is how it
	// finds a consumer whose leader died with a cluster node. Default 2s;
	// 500ms to 30s.
	PullHeartbeat time.Duration
	// PublishTimeout bounds the wait for JetStream to acknowledge an
	// output; past it the input is nak'ed and redelivered (the outputs are
	// de-duplicated). Without it a publish lost in a leader election would
	// stall the worker. Default 10s, at most HandlerTimeout.
	PublishTimeout time.Duration
	// RepublishFor is how long an output the cluster did not take (no
	// stream leader during an election, a lost publish) is published
	// again before the input is nak'ed. Default AckWait.
	RepublishFor time.Duration
}

func (c *Config) setDefaults() {
	c.Consumer = withConsumerDefaults(c.Consumer)
	if c.ID == "" {
		c.ID = NewWorkerID()
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 5 * time.Millisecond
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 256
	}
	if c.FetchBatch > c.Consumer.MaxAckPending {
		c.FetchBatch = c.Consumer.MaxAckPending
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = c.Consumer.AckWait * 8 / 10
	}
	if c.RetryBackoffMin <= 0 {
		c.RetryBackoffMin = 500 * time.Millisecond
	}
	if c.RetryBackoffMax <= 0 {
		c.RetryBackoffMax = 30 * time.Second
	}
	if c.RestartBackoffMin <= 0 {
		c.RestartBackoffMin = 100 * time.Millisecond
	}
	if c.RestartBackoffMax <= 0 {
		c.RestartBackoffMax = 5 * time.Second
	}
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 20
	}
	if c.RestartWindow <= 0 {
		c.RestartWindow = time.Minute
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 4 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.ConnectRetryMax <= 0 {
		c.ConnectRetryMax = 10 * time.Second
	}
	if c.PullHeartbeat <= 0 {
		c.PullHeartbeat = 2 * time.Second
	}
	c.PullHeartbeat = min(max(c.PullHeartbeat, 500*time.Millisecond), 30*time.Second) // the client's allowed range
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	c.PublishTimeout = min(c.PublishTimeout, c.HandlerTimeout)
	if c.RepublishFor <= 0 {
		c.RepublishFor = c.Consumer.AckWait
	}
}

func (c *Config) validate() error {
	if c.Conn == nil {
		return fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	if c.Step.Name == "" || c.Step.Input == "" {
		return fmt.Errorf("%w: step %q consumes no stage", ErrInvalidConfig, c.Step.Name)
	}
	if err := subjects.ValidateToken("dataset", c.Dataset); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := subjects.ValidateToken("worker", c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if (c.NewHandlerFunc == nil) == (c.NewBatchHandlerFunc == nil) {
		return fmt.Errorf("%w: set exactly one of NewHandlerFunc and NewBatchHandlerFunc", ErrInvalidConfig)
	}
	if c.Partitions > 0 {
		if _, err := c.consumerConfig(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.HandlerTimeout >= c.Consumer.AckWait {
		return fmt.Errorf("%w: handler timeout %s must be below AckWait %s", ErrInvalidConfig, c.HandlerTimeout, c.Consumer.AckWait)
	}
	return nil
}

func (c *Config) consumerName() string {
	if c.Partitions > 0 {
		return subjects.PartitionConsumerName(c.Step.Name, c.Dataset, c.Partition)
	}
	return subjects.ConsumerName(c.Step.Name, c.Dataset)
}

func (c *Config) consumerConfig() (jetstream.ConsumerConfig, error) {
	if c.Partitions > 0 {
		return subjects.PartitionConsumer(c.Step, c.Dataset, c.Partition, c.Partitions, c.Consumer)
	}
	return subjects.Consumer(c.Step, c.Dataset, c.Consumer)
}

// withConsumerDefaults fills the consumer options the same way
// subjects.Consumer does, so the worker knows AckWait and MaxDeliver.
func withConsumerDefaults(o subjects.ConsumerOptions) subjects.ConsumerOptions {
	cfg, _ := subjects.Consumer(subjects.StepValidate, "x", o)
	return subjects.ConsumerOptions{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending}
}

// NewWorkerID returns a worker id unique on this fleet: host name and a
// random suffix, usable as a subject token.
func NewWorkerID() string {
	host, _ := os.Hostname()
	host = sanitizeToken(host)
	if len(host) > 24 {
		host = host[:24]
	}
	id := nuid.Next()
	id = strings.ToLower(id[len(id)-8:])
	if host == "" {
		return "w-" + id
	}
	return host + "-" + id
}

func sanitizeToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-_")
}

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
	// lastReconnect is when the connection last came back.
	lastReconnect atomic.Pointer[time.Time]

	maxDeliver int
	// handlerSeconds is this worker's series of the handler latency histogram.
	handlerSeconds prometheus.Observer
	// stall bounds how long a publish waits for room in the async window:
	// a full window is backpressure, not an error.
	stall jetstream.PublishOpt

	iterMu sync.Mutex
	iter   jetstream.MessagesContext
	paused atomic.Bool
	wake   chan struct{}

	// Start/Stop bookkeeping.
	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	stopped chan struct{}
	runErr  error
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
		stopped:  make(chan struct{}),
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

// OutputSubject is where the worker's step publishes its dataset's
// records, "" for a sink.
func (w *Worker) OutputSubject() string { return w.outSubject }

func (w *Worker) setState(s string) { w.state.Store(&s) }

func (w *Worker) setLastErr(err error) {
	s := err.Error()
	w.lastErr.Store(&s)
}

// Start runs the worker in the background and returns once its consumer
// is bound, or with the error that kept it from starting.
func (w *Worker) Start(ctx context.Context) error {
	w.mu.Lock()
	if w.cancel != nil {
		w.mu.Unlock()
		return fmt.Errorf("%w: worker %s already started", ErrInvalidConfig, w.cfg.ID)
	}
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	w.cancel = cancel
	w.mu.Unlock()
	ready := make(chan struct{})
	go func() {
		defer close(w.stopped)
		err := w.run(runCtx, ready)
		w.mu.Lock()
		w.runErr = err
		w.mu.Unlock()
	}()
	select {
	case <-ready:
		return nil
	case <-w.stopped:
		return w.Err()
	case <-ctx.Done():
		cancel(ErrStopped)
		<-w.stopped
		return ctx.Err()
	}
}

// Stop drains the worker and waits until it has stopped or ctx expires.
// It is idempotent and safe without Start.
func (w *Worker) Stop(ctx context.Context) error {
	w.mu.Lock()
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrStopped)
	select {
	case <-w.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopped is closed once a started worker has stopped.
func (w *Worker) Stopped() <-chan struct{} { return w.stopped }

// Err is the error a started worker stopped with, nil for a clean stop.
func (w *Worker) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runErr
}

// Run runs the worker until ctx is cancelled, then drains and returns nil.
// It returns an error only when the worker cannot go on (its consumer was
// deleted, its handler crashed too often, it could not be built).
func (w *Worker) Run(ctx context.Context) error {
	return w.run(ctx, nil)
}

func (w *Worker) run(ctx context.Context, ready chan<- struct{}) error {
	w.started = time.Now()
	cons, err := w.bind(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	handler, err := w.newHandler()
	if err != nil {
		return fmt.Errorf("build %s handler: %w", w.cfg.Step.Name, err)
	}

	// Handlers and the acker run under hardCtx, which outlives ctx by the
	// drain timeout: cancelling ctx stops fetching, not in-flight work.
	hardCtx, hardCancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer hardCancel(ErrStopped)

	if err := w.openIter(cons); err != nil {
		return err
	}
	defer w.stopIter()

	// The queue holds every message awaiting its pub-acks: sized to what
	// the server lets the worker hold, so the server's window, not this
	// queue, bounds how many records are in flight.
	ackQueue := make(chan *pending, w.cfg.Consumer.MaxAckPending)
	ackerDone := make(chan struct{})
	go func() {
		defer close(ackerDone)
		w.acker(hardCtx, ackQueue)
	}()

	hbDone := make(chan struct{})
	hbCtx, hbCancel := context.WithCancel(context.WithoutCancel(ctx))
	connDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		w.heartbeats(hbCtx)
	}()
	go func() {
		defer close(connDone)
		w.watchConn(hbCtx)
	}()
	defer func() {
		hbCancel()
		<-hbDone
		<-connDone
		w.setState(subjects.StateStopped)
		w.beat() // goodbye beat: the supervisor can mark the worker gone at once
	}()

	// On stop: drain the iterator (buffered messages are still handled),
	// then after DrainTimeout cancel everything still running.
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopWatch:
			return
		}
		w.setState(subjects.StateDraining)
		w.log.Info().Msg("draining")
		w.drainIter()
		t := time.NewTimer(w.cfg.DrainTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			w.log.Warn().Dur("drain_timeout", w.cfg.DrainTimeout).Msg("drain timed out; cancelling in-flight work, it will be redelivered")
			hardCancel(ErrStopped)
			w.stopIter()
		case <-stopWatch:
		}
	}()

	w.setState(subjects.StateRunning)
	w.log.Info().Str("consumer", w.consumer).Str("output", w.outSubject).Msg("worker started")
	if ready != nil {
		close(ready)
	}

	restarts := newRestartWindow(w.cfg.MaxRestarts, w.cfg.RestartWindow)
	var runErr error
	for {
		if w.paused.Load() && ctx.Err() == nil {
			if err := w.pause(ctx, cons); err != nil {
				runErr = err
				break
			}
			continue
		}
		it := w.currentIter()
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				if w.paused.Load() && ctx.Err() == nil {
					continue // closed by Pause: wait for Resume
				}
				break
			}
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				runErr = fmt.Errorf("consumer %s: %w", w.consumer, err)
				break
			}
			// Missed heartbeats and reconnects: the iterator recovers.
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				w.log.Warn().Err(err).Msg("pull not confirmed by the server (consumer leader moved or connection lost); pulling again")
				continue
			}
			w.log.Warn().Err(err).Msg("fetch")
			continue
		}
		crash := w.dispatch(hardCtx, handler, msg, it, ackQueue)
		if crash == nil {
			continue
		}
		n := w.stats.crashes.Add(1)
		w.log.Error().Str("panic", fmt.Sprint(crash.Value)).Bytes("stack", crash.Stack).Int64("crashes", n).Msg("handler crashed; restarting it")
		if !restarts.allow(time.Now()) {
			runErr = fmt.Errorf("%w: %d crashes within %s, last: %v", ErrTooManyRestarts, w.cfg.MaxRestarts, w.cfg.RestartWindow, crash)
			break
		}
		if !sleepCtx(ctx, backoff(w.cfg.RestartBackoffMin, w.cfg.RestartBackoffMax, restarts.recent())) {
			continue // stopping: the drain path takes over
		}
		if handler, err = w.newHandler(); err != nil {
			runErr = fmt.Errorf("rebuild %s handler: %w", w.cfg.Step.Name, err)
			break
		}
	}
	w.stopIter()
	close(ackQueue)
	<-ackerDone
	// Acks are fire-and-forget; a flush makes sure the server has them
	// before the worker reports itself stopped.
	if err := w.cfg.Conn.FlushTimeout(2 * time.Second); err != nil {
		w.log.Warn().Err(err).Msg("flush acks")
	}
	if runErr != nil {
		w.setLastErr(runErr)
		return runErr
	}
	w.log.Info().Int64("acked", w.stats.acked.Load()).Msg("worker stopped")
	return nil
}

// bind ensures the streams and the durable consumer, retrying with backoff
// while JetStream is unreachable, so a worker may start before its server.
func (w *Worker) bind(ctx context.Context) (jetstream.Consumer, error) {
	ccfg, err := w.cfg.consumerConfig()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	for attempt := 1; ; attempt++ {
		cons, err := w.tryBind(ctx, ccfg)
		if err == nil {
			w.maxDeliver = cons.CachedInfo().Config.MaxDeliver
			if attempt > 1 {
				w.log.Info().Int("attempts", attempt).Msg("JetStream reachable")
			}
			return cons, nil
		}
		if errors.Is(err, subjects.ErrStreamConflict) {
			return nil, err
		}
		w.setLastErr(err)
		delay := backoff(200*time.Millisecond, w.cfg.ConnectRetryMax, attempt)
		w.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Str("url", w.cfg.Conn.ConnectedUrlRedacted()).Msg("waiting for JetStream")
		if !sleepCtx(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

func (w *Worker) tryBind(ctx context.Context, ccfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := subjects.Ensure(ctx, w.js, w.cfg.Streams); err != nil {
		return nil, err
	}
	switch len(w.cfg.FilterSubjects) {
	case 0:
	case 1: // the server's single-filter path is the fast one
		ccfg.FilterSubject, ccfg.FilterSubjects = w.cfg.FilterSubjects[0], nil
	default:
		ccfg.FilterSubject, ccfg.FilterSubjects = "", w.cfg.FilterSubjects
	}
	stream := subjects.StreamFor(w.cfg.Step.Input)
	cons, err := w.js.CreateOrUpdateConsumer(ctx, stream, ccfg)
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", ccfg.Durable, stream, err)
	}
	return cons, nil
}

// sleepCtx waits d or until ctx is done; it reports whether d elapsed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff is min doubled per attempt after the first, capped at max.
func backoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}

// restartWindow counts crashes in a sliding window: the restart intensity.
type restartWindow struct {
	max    int
	window time.Duration
	times  []time.Time
}

func newRestartWindow(maxRestarts int, window time.Duration) *restartWindow {
	return &restartWindow{max: maxRestarts, window: window}
}

func (r *restartWindow) allow(now time.Time) bool {
	cut := 0
	for cut < len(r.times) && now.Sub(r.times[cut]) > r.window {
		cut++
	}
	r.times = append(r.times[cut:], now)
	return len(r.times) <= r.max
}

func (r *restartWindow) recent() int { return len(r.times) }
