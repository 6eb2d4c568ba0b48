// Package startstop is the Start/Stop/Stopped bookkeeping of every
// long-lived component (STYLE.md §4, after River's startstop): Start runs
// once and returns when the component is ready, Stop is idempotent and
// safe without Start, Stopped closes when the component's goroutine has
// returned, and Err is what it returned.
//
// A component embeds a Service and writes its body as a function that
// calls startedFunc once it is ready:
//
//	func (c *C) Start(ctx context.Context) error {
//		return c.svc.Start(ctx, func(ctx context.Context, startedFunc func()) error {
//			// bind, subscribe...
//			startedFunc()
//			<-ctx.Done() // cancelled by Stop, cause ErrStopped
//			return nil
//		})
//	}
//	func (c *C) Stop(ctx context.Context) error { return c.svc.Stop(ctx) }
//	func (c *C) Stopped() <-chan struct{}       { return c.svc.Stopped() }
package startstop

import (
	"context"
	"errors"
	"sync"
)

var (
	// ErrAlreadyStarted is returned by Begin and Start on a second start.
	ErrAlreadyStarted = errors.New("already started")
	// ErrStopped is the cause of the run context's cancellation on Stop,
	// telling a requested stop apart from a failure: the one stop cause of
	// every component (workers, their handlers' contexts, the supervisor).
	ErrStopped = errors.New("stopped")
)

// Service is embedded by a component; its zero value is ready.
type Service struct {
	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	stopped chan struct{}
	closed  bool // stopped is closed: a new start gets a new one
	err     error
}

func (s *Service) stoppedCh() chan struct{} {
	if s.stopped == nil {
		s.stopped = make(chan struct{})
	}
	return s.stopped
}

// Start runs runFunc on a goroutine of its own, under a context detached
// from ctx's cancellation and cancelled by Stop. It returns nil once
// runFunc calls startedFunc, runFunc's error if it returns first, or ctx's
// error if ctx ends first (runFunc is then stopped and waited for). A start that failed
// counts as stopped (Stopped is closed, Err is its error) and may be
// tried again.
func (s *Service) Start(ctx context.Context, runFunc func(ctx context.Context, startedFunc func()) error) error {
	runCtx, err := s.Begin(ctx)
	if err != nil {
		return err
	}
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		err := runFunc(runCtx, func() { once.Do(func() { close(ready) }) })
		s.mu.Lock()
		s.err = err
		select {
		case <-ready:
		default:
			s.cancel(err)
			s.cancel = nil
		}
		s.mu.Unlock()
		s.Finished()
	}()
	stopped := s.Stopped()
	select {
	case <-ready:
		return nil
	case <-stopped:
		return s.Err()
	case <-ctx.Done():
		s.mu.Lock()
		if s.cancel != nil {
			s.cancel(ErrStopped)
		}
		s.mu.Unlock()
		<-stopped
		return ctx.Err()
	}
}

// Begin marks the service started and returns the context its goroutine
// runs under: detached from ctx's cancellation, cancelled by Stop. The
// caller starts the goroutine, which calls Finished when it returns, or
// calls Abort if the start fails before that. Start does all of this.
func (s *Service) Begin(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return nil, ErrAlreadyStarted
	}
	if s.closed {
		s.stopped, s.closed, s.err = nil, false, nil
	}
	s.stoppedCh()
	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	s.cancel = cancel
	return runCtx, nil
}

// Abort undoes a Begin whose start failed, so Start may be tried again.
func (s *Service) Abort(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		s.cancel(cause)
		s.cancel = nil
	}
}

// Finished is called by the service's goroutine when it returns.
func (s *Service) Finished() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.stoppedCh())
	s.closed = true
}

// Stop cancels the run context and waits for the goroutine, or for ctx.
// Idempotent; a no-op before Start.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	cancel, stopped := s.cancel, s.stoppedCh()
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrStopped)
	select {
	case <-stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stopped is closed once a started service has stopped.
func (s *Service) Stopped() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stoppedCh()
}

// Err is the error the run function of Start returned, nil while it runs
// and after a clean stop.
func (s *Service) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
