package message_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/message"
)

func TestBatchRecords(t *testing.T) {
	t.Parallel()
	one := &message.Delivery{Proto: message.Record{Subject: "a", MsgID: "m-1"}}
	one.SetBody([]byte(`{"x":1}`))
	bulk := &message.Delivery{
		Proto: message.Record{Subject: "b", MsgID: "m-2", Bulk: true}, First: 1,
		Lines: [][]byte{[]byte(`{"y":1}`), []byte(`{"y":2}`)},
	}
	b := &message.Batch{Deliveries: []*message.Delivery{one, bulk}}
	require.Equal(t, 3, b.Len())
	require.Equal(t, []message.Record{
		{Data: []byte(`{"x":1}`), Subject: "a", MsgID: "m-1"},
		{Data: []byte(`{"y":1}`), Subject: "b", MsgID: "m-2", Bulk: true},
		{Data: []byte(`{"y":2}`), Subject: "b", MsgID: "m-2", Bulk: true, Index: 1},
	}, b.Records())
	require.Same(t, one, b.DeliveryOf(0))
	require.Same(t, bulk, b.DeliveryOf(1))
	require.Same(t, bulk, b.DeliveryOf(2))
	require.Zero(t, (&message.Batch{}).Len())
}

func TestChainOrder(t *testing.T) {
	t.Parallel()
	var order []string
	mw := func(name string) message.Middleware {
		return func(next message.HandlerFunc) message.HandlerFunc {
			return func(ctx context.Context, b *message.Batch) error {
				order = append(order, name)
				return next(ctx, b)
			}
		}
	}
	h := message.Chain(func(context.Context, *message.Batch) error { order = append(order, "handler"); return nil }, mw("outer"), mw("inner"))
	require.NoError(t, h(t.Context(), &message.Batch{}))
	require.Equal(t, []string{"outer", "inner", "handler"}, order, "the first middleware is outermost")
}

func TestErrorMarks(t *testing.T) {
	t.Parallel()
	require.True(t, message.IsPermanent(message.Permanentf("bad %d", 1)))
	require.False(t, message.IsPermanent(context.Canceled))
	require.NoError(t, message.Permanent(nil))
	d, ok := message.RetryDelay(message.RetryAfter(5, context.Canceled))
	require.True(t, ok)
	require.EqualValues(t, 5, d)
	require.ErrorIs(t, message.RetryAfter(5, context.Canceled), context.Canceled)
	require.True(t, message.IsPermanent(permanentByNature{}), "an error may be permanent by its type")
}

type permanentByNature struct{}

func (permanentByNature) Error() string   { return "invalid" }
func (permanentByNature) Permanent() bool { return true }
