package middleware_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/message"
	"github.com/jetfleet/jetfleet/workers/middleware"
)

func TestTimeout(t *testing.T) {
	t.Parallel()
	b := batchOf(t, "", `{"a":1}`)
	var deadline time.Time
	var err error
	h := message.Chain(handlerOf(nil, func(ctx context.Context, _ *message.Batch) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done() // a handler that overruns its deadline
		err = ctx.Err()
	}), middleware.Timeout(50*time.Millisecond, time.Millisecond))
	start := time.Now()
	require.NoError(t, h(t.Context(), b))
	require.WithinDuration(t, start.Add(50*time.Millisecond), deadline, 40*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded, "as context.WithTimeout fails")
	// A batch past progressAfter told the server it is in progress: the
	// message can still be acked (it was not redelivered or terminated).
	require.NoError(t, b.Deliveries[0].Msg.DoubleAck(t.Context()))
}

// TestTimeoutNextBatchUnaffected: one context serves batch after batch;
// a batch that timed out does not cut short the next, and a parent's
// cancellation and cause reach the handler.
func TestTimeoutNextBatchUnaffected(t *testing.T) {
	t.Parallel()
	var errs []error
	h := message.Chain(func(ctx context.Context, _ *message.Batch) error {
		if len(errs) == 0 {
			<-ctx.Done() // the first batch overruns
		}
		errs = append(errs, ctx.Err())
		return nil
	}, middleware.Timeout(20*time.Millisecond, time.Hour))
	for range 3 {
		require.NoError(t, h(t.Context(), &message.Batch{}))
	}
	require.ErrorIs(t, errs[0], context.DeadlineExceeded)
	require.Equal(t, []error{nil, nil}, errs[1:], "later batches have their own time")

	stop := errors.New("worker stopped")
	parent, cancel := context.WithCancelCause(t.Context())
	cancel(stop)
	var cause error
	require.NoError(t, message.Chain(func(ctx context.Context, _ *message.Batch) error {
		cause = context.Cause(ctx)
		return nil
	}, middleware.Timeout(time.Minute, time.Hour))(parent, &message.Batch{}))
	require.ErrorIs(t, cause, stop)
}
