package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/subjects"
)

// Supervisor watches the fleet: it folds heartbeats into the fleet bucket
// and judges liveness, copies messages that JetStream gave up on to the
// dead-letter stream, and publishes throughput, tree and mart state.
// Its methods are safe for concurrent use.
type Supervisor struct {
	cfg     Config
	log     zerolog.Logger
	js      jetstream.JetStream
	metrics *supMetrics

	mu        sync.Mutex
	kv        jetstream.KeyValue
	workers   map[string]*WorkerStatus // by step.worker
	lastErr   map[string]errNote       // by consumer
	rates     map[string]*rateTracker  // by consumer
	acked     map[string]rateBase      // last counters by step.worker, for rates
	announced []byte                   // last supervisor record written, sans time
	martsJSON []byte
	progJSON  []byte
	ledgers   []*ledger
	started   time.Time

	ready atomic.Bool
	svc   startstop.Service
}

// errNote is the last error a worker of a consumer reported.
type errNote struct {
	err    string
	worker string
	at     time.Time
}

// New checks cfg and builds a supervisor. It does no I/O.
func New(cfg Config) (*Supervisor, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Supervisor{
		cfg:     cfg,
		log:     cfg.Logger.With().Str("component", "supervisor").Str("supervisor", cfg.ID).Logger(),
		js:      js,
		metrics: newSupMetrics(),
		workers: map[string]*WorkerStatus{},
		lastErr: map[string]errNote{},
		rates:   map[string]*rateTracker{},
		acked:   map[string]rateBase{},
	}, nil
}

// JetStream is the supervisor's JetStream context, for Snapshot.
func (s *Supervisor) JetStream() jetstream.JetStream { return s.js }

// Ready reports whether the supervisor has started and holds its
// subscriptions.
func (s *Supervisor) Ready() bool { return s.ready.Load() }

// Start binds the fleet bucket (creating it if needed, retrying while
// JetStream is unreachable), subscribes to heartbeats and advisories and
// returns; the work goes on in the background until Stop.
func (s *Supervisor) Start(ctx context.Context) error {
	err := s.svc.Start(ctx, s.run)
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: supervisor %s already started", ErrInvalidConfig, s.cfg.ID)
	}
	return err
}

// run is the supervisor's life: bind, subscribe, then fold heartbeats and
// advisories until Stop.
func (s *Supervisor) run(ctx context.Context, startedFunc func()) error {
	kv, err := s.bind(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.kv = kv
	s.started = time.Now()
	s.mu.Unlock()
	if err := s.loadWorkers(ctx); err != nil {
		s.log.Warn().Err(err).Msg("could not load known workers; starting empty")
	}

	advCons, err := s.bindAdvisories(ctx)
	if err != nil {
		return err
	}
	beats := make(chan *nats.Msg, 4096)
	var subs []*nats.Subscription
	defer func() {
		for _, x := range subs {
			_ = x.Unsubscribe()
		}
	}()
	for subj, ch := range map[string]chan *nats.Msg{
		subjects.AllHeartbeats: beats,
	} {
		sub, err := s.cfg.Conn.ChanSubscribe(subj, ch)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", subj, err)
		}
		_ = sub.SetPendingLimits(-1, -1)
		subs = append(subs, sub)
	}
	// Ask every worker serving control requests to beat now, so a
	// (re)started supervisor knows the fleet at once, not a beat later.
	ping, _ := json.Marshal(subjects.ControlRequest{Op: subjects.CtlPing})
	for _, st := range []subjects.Step{subjects.StepValidate, subjects.StepTransform, subjects.StepAggregate, subjects.StepAlert} {
		_ = s.cfg.Conn.Publish(subjects.ControlStep(st.Name), ping)
	}
	if err := s.cfg.Conn.FlushTimeout(5 * time.Second); err != nil {
		s.log.Warn().Err(err).Msg("flush subscriptions")
	}

	var g errgroup.Group
	for _, name := range ledgerStreams {
		l := newLedger(s.js, kv, s.log, name)
		if err := l.load(ctx); err != nil {
			s.log.Warn().Err(err).Msg("could not load the ledger; counting anew")
		}
		s.ledgers = append(s.ledgers, l)
		g.Go(func() error { l.run(ctx); return nil })
	}
	g.Go(func() error { s.fleetLoop(ctx, beats); return nil })
	advisories, err := s.consumeAdvisories(ctx, advCons)
	if err != nil {
		_ = g.Wait()
		return fmt.Errorf("consume %s: %w", subjects.StreamAdvisories, err)
	}
	svc, err := s.serveMicro()
	if err != nil {
		s.log.Warn().Err(err).Msg("not discoverable as a NATS micro service")
	}
	s.ready.Store(true)
	s.announce(ctx, time.Now(), true)
	s.log.Info().Dur("dead_after", s.cfg.DeadAfter).Int("stale_beats", s.cfg.StaleBeats).Msg("supervisor started")
	startedFunc()

	<-ctx.Done()
	if svc != nil {
		_ = svc.Stop()
	}
	advisories.Drain()
	<-advisories.Closed()
	_ = g.Wait()
	s.ready.Store(false)
	delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	for _, l := range s.ledgers {
		l.save(delCtx, time.Now())
	}
	if err := kv.Delete(delCtx, subjects.KeySupervisor(s.cfg.ID)); err != nil {
		s.log.Debug().Err(err).Msg("remove supervisor record")
	}
	s.log.Info().Msg("supervisor stopped")
	return nil
}

// Stop stops the supervisor and waits until it has or ctx expires. It is
// idempotent and safe without Start.
func (s *Supervisor) Stop(ctx context.Context) error { return s.svc.Stop(ctx) }

// Stopped is closed once a started supervisor has stopped.
func (s *Supervisor) Stopped() <-chan struct{} { return s.svc.Stopped() }

func (s *Supervisor) bind(ctx context.Context) (jetstream.KeyValue, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := ensureFleetKV(actx, s.js, s.cfg.Streams)
		cancel()
		if err == nil {
			return kv, nil
		}
		if errors.Is(err, subjects.ErrServerTooOld) || errors.Is(err, subjects.ErrNotSetUp) {
			return nil, err // retrying cannot help
		}
		delay := backoff.Delay(200*time.Millisecond, 10*time.Second, attempt)
		s.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("waiting for JetStream")
		if !backoff.Sleep(ctx, delay) {
			return nil, ctx.Err()
		}
	}
}

// bindAdvisories ensures JF_ADVISORIES and the supervisors' consumer on
// it, retrying while JetStream is unreachable like bind.
func (s *Supervisor) bindAdvisories(ctx context.Context) (jetstream.Consumer, error) {
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := subjects.EnsureAdvisories(actx, s.js, s.cfg.Streams)
		cancel()
		if err == nil {
			return cons, nil
		}
		if errors.Is(err, subjects.ErrServerTooOld) || errors.Is(err, subjects.ErrStreamConflict) ||
			errors.Is(err, subjects.ErrNotSetUp) || errors.Is(err, subjects.ErrConsumerConflict) {
			return nil, err
		}
		s.log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("waiting for JetStream (advisories)")
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// loadWorkers picks up the workers the bucket knows, so a restarted
// supervisor goes on judging them, and their last errors (of dead and
// stopped workers too), so that a dead letter for an advisory published
// while it was down still says what the step reported.
func (s *Supervisor) loadWorkers(ctx context.Context) error {
	recs, err := readAll(ctx, s.kv, subjects.KeyPrefixWorker)
	if err != nil {
		return err
	}
	gone, err := readAll(ctx, s.kv, subjects.KeyPrefixGone)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	note := func(w WorkerStatus) {
		if w.LastErr != "" && w.Consumer != "" && w.LastBeat.After(s.lastErr[w.Consumer].at) {
			s.lastErr[w.Consumer] = errNote{err: w.LastErr, worker: w.ID, at: w.LastBeat}
		}
	}
	for _, v := range gone {
		var w WorkerStatus
		if json.Unmarshal(v, &w) == nil {
			note(w)
		}
	}
	for _, v := range recs {
		var w WorkerStatus
		if json.Unmarshal(v, &w) != nil || w.ID == "" {
			continue
		}
		s.workers[w.Step+"."+w.ID] = &w
		note(w)
	}
	return nil
}

// fleetLoop folds heartbeats and runs the liveness sweep.
func (s *Supervisor) fleetLoop(ctx context.Context, beats <-chan *nats.Msg) {
	sweep := time.NewTicker(s.cfg.SweepInterval)
	defer sweep.Stop()
	announce := time.NewTicker(s.cfg.AnnounceInterval)
	defer announce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-beats:
			s.onBeat(ctx, m.Data, time.Now())
		case now := <-sweep.C:
			s.sweep(ctx, now)
			s.announce(ctx, now, false)
			// Marts change at every flush; status --wait-idle reads them
			// from the bucket, so they go there at sweep pace (a write
			// happens only when they changed).
			mctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			s.writeMarts(mctx)
			s.writeProgress(mctx)
			for _, l := range s.ledgers {
				l.save(mctx, now)
			}
			cancel()
		case now := <-announce.C:
			s.announce(ctx, now, true)
		}
	}
}

// announce writes the supervisor's record (every AnnounceInterval, or
// sooner when the tree changed), throughput and marts.
func (s *Supervisor) announce(ctx context.Context, now time.Time, periodic bool) {
	host, _ := os.Hostname()
	rec := SupervisorStatus{
		ID: s.cfg.ID, Host: host, PID: os.Getpid(), Version: s.cfg.Version,
		Started: s.started.UTC(), IntervalMS: s.cfg.AnnounceInterval.Milliseconds(),
	}
	if s.cfg.Tree != nil {
		rec.Children = s.cfg.Tree.States()
	}
	sig, _ := json.Marshal(rec)
	s.mu.Lock()
	changed := string(sig) != string(s.announced)
	s.announced = sig
	s.mu.Unlock()
	if !periodic && !changed {
		return
	}
	rec.Up, rec.LastSeen = true, now.UTC()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := putTTL(wctx, s.js, subjects.KeySupervisor(s.cfg.ID), rec, 3*s.cfg.AnnounceInterval); err != nil {
		s.log.Warn().Err(err).Msg("announce")
	}
	if !periodic {
		return
	}
	s.writeRates(wctx, now)
	s.writeMarts(wctx)
}

func (s *Supervisor) writeMarts(ctx context.Context) {
	if s.cfg.MartsFunc == nil {
		return
	}
	marts, err := s.cfg.MartsFunc(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("marts")
		return
	}
	data, _ := json.Marshal(marts)
	s.mu.Lock()
	same := string(data) == string(s.martsJSON)
	s.mu.Unlock()
	if same {
		return
	}
	if _, err := s.kv.Put(ctx, subjects.KeyMarts, data); err != nil {
		s.log.Warn().Err(err).Msg("write marts")
		return
	}
	s.mu.Lock()
	s.martsJSON = data
	s.mu.Unlock()
}
