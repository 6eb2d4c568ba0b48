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

var retryCfg = middleware.RetryConfig{MaxDeliver: 3, BackoffMin: 10 * time.Millisecond, BackoffMax: time.Second}

func TestRetryRejectsBecomeDeadLetters(t *testing.T) {
	t.Parallel()
	b := batchOf(t, "", `{"a":1}`, `{"a":2}`, `{"a":3}`)
	b.Deliveries[2].Bulk = true // a bulk message keeps its ack with a rejected record
	h := message.Chain(handlerOf(nil, func(_ context.Context, b *message.Batch) {
		b.Rejects = append(b.Rejects, message.Reject{Index: 1, Err: errors.New("bad")}, message.Reject{Index: 2, Err: errors.New("worse")}, message.Reject{Index: 9, Err: errors.New("out of range")})
	}), middleware.Retry(retryCfg))
	require.NoError(t, h(t.Context(), b))
	require.Equal(t, message.Verdict{}, b.Deliveries[0].Verdict, "ack")
	require.Equal(t, []message.DeadLetter{{Index: 0, Data: []byte(`{"a":2}`), Reason: "bad"}}, b.Deliveries[1].Dead)
	require.Equal(t, message.Verdict{Action: message.Term, Reason: "bad"}, b.Deliveries[1].Verdict, "a record-mode message whose record is dead is terminated")
	require.Len(t, b.Deliveries[2].Dead, 1)
	require.Equal(t, message.Ack, b.Deliveries[2].Verdict.Action)
}

func TestRetryNaksThenDeadLettersWhole(t *testing.T) {
	t.Parallel()
	b := batchOf(t, "", `{"a":1}`)
	d := b.Deliveries[0]
	flaky := errors.New("downstream unavailable")
	h := message.Chain(handlerOf(flaky, func(_ context.Context, b *message.Batch) {
		b.Deliveries[0].Outputs = []message.Output{{Subject: "x"}} // not published: the batch failed
	}), middleware.Retry(retryCfg))
	require.ErrorIs(t, h(t.Context(), b), flaky)
	require.Equal(t, message.Verdict{Action: message.Nak, Delay: 10 * time.Millisecond, Err: flaky}, d.Verdict)
	require.Empty(t, d.Outputs)

	d.Meta.NumDelivered = 2
	require.ErrorIs(t, h(t.Context(), b), flaky)
	require.Equal(t, 20*time.Millisecond, d.Verdict.Delay, "doubled per delivery")

	require.ErrorIs(t, message.Chain(handlerOf(message.RetryAfter(time.Minute, flaky), nil), middleware.Retry(retryCfg))(t.Context(), b), flaky)
	require.Equal(t, time.Minute, d.Verdict.Delay, "as RetryAfter asked")

	d.Meta.NumDelivered = 3
	require.ErrorIs(t, h(t.Context(), b), flaky)
	require.Equal(t, message.Term, d.Verdict.Action)
	require.Equal(t, "gave up after 3 deliveries: downstream unavailable", d.Verdict.Reason)
	require.Equal(t, []message.DeadLetter{{Index: -1, Data: []byte(`{"a":1}`), Reason: d.Verdict.Reason}}, d.Dead)
}
