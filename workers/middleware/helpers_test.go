package middleware_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// batchOf fetches real JetStream deliveries of bodies, one message each
// (their trace parent set to tp when given), and returns them as a batch
// of one record per delivery.
func batchOf(t *testing.T, tp string, bodies ...string) *message.Batch {
	t.Helper()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}})
	require.NoError(t, err)
	for i, body := range bodies {
		m := nats.NewMsg("t.in")
		m.Data = []byte(body)
		m.Header.Set(subjects.HeaderMsgID, "id-"+strconv.Itoa(i))
		if tp != "" {
			m.Header.Set(subjects.HeaderTraceParent, tp)
		}
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	cons, err := js.CreateConsumer(ctx, "T", jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	msgs, err := cons.Fetch(len(bodies), jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	b := &message.Batch{}
	for m := range msgs.Messages() {
		meta, err := m.Metadata()
		require.NoError(t, err)
		b.Deliveries = append(b.Deliveries, &message.Delivery{Msg: m, Meta: meta, ID: m.Headers().Get(subjects.HeaderMsgID), First: b.Len(), Lines: [][]byte{m.Data()}})
	}
	require.NoError(t, msgs.Error())
	require.Len(t, b.Deliveries, len(bodies))
	return b
}

// handlerOf is a handler returning err after calling f (when given).
func handlerOf(err error, f func(ctx context.Context, b *message.Batch)) message.HandlerFunc {
	return func(ctx context.Context, b *message.Batch) error {
		if f != nil {
			f(ctx, b)
		}
		return err
	}
}
