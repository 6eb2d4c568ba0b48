package workers

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/internal/cputime"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// BenchmarkChunkPath is the worker's own work on a bulk message of 100
// records, without NATS: take it apart, run the handler chain
// (passthrough, inside the runtime's middleware), and build the output
// messages. The message is a real one, fetched once from an embedded
// server. It shows what the runtime adds to a hop per record.
func BenchmarkChunkPath(b *testing.B) {
	nc, js := embeddedtest.JetStream(b)
	ctx := b.Context()
	require.NoError(b, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	m := nats.NewMsg(subjects.Ingest("orders"))
	for j := range 100 {
		if j > 0 {
			m.Data = append(m.Data, '\n')
		}
		m.Data = fmt.Appendf(m.Data, `{"order_id":"o-%d","amount":%d}`, j, j)
	}
	m.Header.Set(subjects.HeaderRecords, "100")
	m.Header.Set(subjects.HeaderMsgID, "chunk-1")
	m.Header.Set(subjects.HeaderTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	_, err := js.PublishMsg(ctx, m)
	require.NoError(b, err)
	cons, err := js.CreateConsumer(ctx, subjects.StreamIngest, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(b, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(b, err)
	msg := <-batch.Messages()
	require.NotNil(b, msg)

	w, err := New(Config{
		Conn: nc, Step: subjects.StepValidate, Dataset: "orders", Logger: zerolog.Nop(),
		NewHandlerFunc: func() (Handler, error) { return Passthrough(subjects.Valid("orders")), nil },
	})
	require.NoError(b, err)
	r, err := w.newRouter()
	require.NoError(b, err)
	bt := &message.Batch{}
	var sent int
	b.ReportAllocs()
	defer cputime.PerOp(b, "record", 100)()
	for b.Loop() {
		w.gather(bt, msg, nil, false)
		if err := r.handle(context.Background(), bt); err != nil {
			b.Fatal(err)
		}
		d := bt.Deliveries[0]
		if err := w.eachOutput(d, func(_ string, data []byte, id string, records int) error {
			sent += records
			_ = subjects.DeriveMsgID(id, strconv.Itoa(records), 0)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	require.Equal(b, b.N*100, sent)
}
