package startstop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/startstop"
)

func TestLifecycle(t *testing.T) {
	t.Parallel()
	var s startstop.Service
	require.NoError(t, s.Stop(t.Context()), "Stop before Start is a no-op")
	runCtx, err := s.Begin(t.Context())
	require.NoError(t, err)
	_, err = s.Begin(t.Context())
	require.ErrorIs(t, err, startstop.ErrAlreadyStarted)
	go func() {
		defer s.Finished()
		<-runCtx.Done()
	}()
	require.NoError(t, s.Stop(t.Context()))
	require.ErrorIs(t, context.Cause(runCtx), startstop.ErrStopped)
	<-s.Stopped()
	require.NoError(t, s.Stop(t.Context()), "Stop is idempotent")
}

func TestAbortAllowsRetryAndStopTimesOut(t *testing.T) {
	t.Parallel()
	var s startstop.Service
	_, err := s.Begin(t.Context())
	require.NoError(t, err)
	s.Abort(errors.New("bucket unavailable"))
	_, err = s.Begin(t.Context())
	require.NoError(t, err, "a failed start may be retried")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, s.Stop(ctx), context.DeadlineExceeded, "no goroutine finished: Stop gives up with ctx")
}

func TestStartWaitsForStarted(t *testing.T) {
	t.Parallel()
	var s startstop.Service
	var runCtx context.Context
	require.NoError(t, s.Start(t.Context(), func(ctx context.Context, started func()) error {
		runCtx = ctx
		started()
		started() // harmless twice
		<-ctx.Done()
		return nil
	}))
	require.ErrorIs(t, s.Start(t.Context(), nil), startstop.ErrAlreadyStarted)
	require.NoError(t, s.Stop(t.Context()))
	require.ErrorIs(t, context.Cause(runCtx), startstop.ErrStopped, "the run context carries the stop cause")
	require.NoError(t, s.Err())
}

func TestStartReturnsRunError(t *testing.T) {
	t.Parallel()
	var s startstop.Service
	boom := errors.New("cannot bind")
	require.ErrorIs(t, s.Start(t.Context(), func(context.Context, func()) error { return boom }), boom)
	<-s.Stopped()
	require.ErrorIs(t, s.Err(), boom)
	require.NoError(t, s.Stop(t.Context()), "Stop after a failed start returns at once")
	require.NoError(t, s.Start(t.Context(), func(ctx context.Context, started func()) error {
		started()
		<-ctx.Done()
		return nil
	}), "a failed start may be tried again")
	require.NoError(t, s.Err())
	require.NoError(t, s.Stop(t.Context()))
}

func TestStartGivesUpWithCtx(t *testing.T) {
	t.Parallel()
	var s startstop.Service
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := s.Start(ctx, func(ctx context.Context, _ func()) error {
		<-ctx.Done() // never ready
		return nil
	})
	require.ErrorIs(t, err, context.Canceled)
	<-s.Stopped()
}
