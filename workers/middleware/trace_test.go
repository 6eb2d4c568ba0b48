package middleware_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
	"github.com/jetfleet/jetfleet/workers/middleware"
)

func TestTrace(t *testing.T) {
	t.Parallel()
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b := batchOf(t, parent, `{"a":1}`, `{"a":2}`)
	h := message.Chain(handlerOf(nil, func(_ context.Context, b *message.Batch) {
		b.Deliveries[0].Outputs = []message.Output{{Subject: "x", Data: []byte("{}")}}
	}), middleware.Trace())
	require.NoError(t, h(t.Context(), b))
	tp := b.Deliveries[0].TraceParent
	require.Equal(t, subjects.TraceID(parent), subjects.TraceID(tp), "same trace")
	require.NotEqual(t, parent, tp, "a new span")
	require.Equal(t, tp, middleware.ChildTraceParent(parent, "id-0"), "derived from the input's id: a redelivery has the same span")
	require.Empty(t, b.Deliveries[1].TraceParent, "no outputs, no span")
}

func TestChildTraceParentStartsATrace(t *testing.T) {
	t.Parallel()
	for _, parent := range []string{"", "garbage", "00-short"} {
		tp := middleware.ChildTraceParent(parent, "in-1")
		require.Len(t, tp, 55)
		require.NotEmpty(t, subjects.TraceID(tp))
		require.Equal(t, tp, middleware.ChildTraceParent(parent, "in-1"))
	}
	require.Empty(t, subjects.TraceID("00-x"))
}
