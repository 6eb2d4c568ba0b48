package middleware_test

import (
	"context"
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
	h := message.Chain(handlerOf(nil, func(ctx context.Context, _ *message.Batch) {
		deadline, _ = ctx.Deadline()
		<-ctx.Done() // a handler that overruns its deadline
	}), middleware.Timeout(50*time.Millisecond, time.Millisecond))
	start := time.Now()
	require.NoError(t, h(t.Context(), b))
	require.WithinDuration(t, start.Add(50*time.Millisecond), deadline, 40*time.Millisecond)
	// A batch past progressAfter told the server it is in progress: the
	// message can still be acked (it was not redelivered or terminated).
	require.NoError(t, b.Deliveries[0].Msg.DoubleAck(t.Context()))
}
