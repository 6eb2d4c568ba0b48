// Package startstop is the Start/Stop/Stopped bookkeeping shared by the
// background components of the steps (STYLE.md §4): Start runs once,
// Stop is idempotent and safe without Start, Stopped closes when the
// component's goroutine has returned.
package startstop

import (
	"context"
	"errors"
	"sync"
)

var (
	// ErrAlreadyStarted is returned by Begin on a second start.
	ErrAlreadyStarted = errors.New("already started")
	// ErrStopped is the cause of the run context's cancellation on Stop.
	ErrStopped = errors.New("stopped")
)

// Service is embedded by a component; its zero value is ready.
type Service struct {
	mu      sync.Mutex
	cancel  context.CancelCauseFunc
	stopped chan struct{}
}

func (s *Service) stoppedCh() chan struct{} {
	if s.stopped == nil {
		s.stopped = make(chan struct{})
	}
	return s.stopped
}

// Begin marks the service started and returns the context its goroutine
// runs under: detached from ctx's cancellation, cancelled by Stop. The
// caller starts the goroutine, which calls Finished when it returns, or
// calls Abort if the start fails before that.
func (s *Service) Begin(ctx context.Context) (context.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return nil, ErrAlreadyStarted
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
