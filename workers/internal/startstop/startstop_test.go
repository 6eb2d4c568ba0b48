package startstop_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/internal/startstop"
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
