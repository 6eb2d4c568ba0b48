package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// A small validate step on a real server: a record with a positive qty goes on to
// jf.valid.orders, one without is dead-lettered with the handler's
// reason. The worker acks each input after its output is stored, and
// gives each output an id derived from its input's.
func Example_step() {
	nc, js, stop := embeddedtest.ForExample() // a JetStream server in a temp dir
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The step: a HandlerFunc is called once per record.
	validate := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		var order struct{ Qty int }
		if err := json.Unmarshal(rec.Data, &order); err != nil || order.Qty <= 0 {
			return nil, workers.Permanentf("qty %d is not positive", order.Qty)
		}
		return []workers.Output{{Subject: subjects.Valid("orders"), Data: rec.Data}}, nil
	})
	w, err := workers.New(workers.Config{
		Conn: nc, Step: subjects.StepValidate, Dataset: "orders",
		NewHandlerFunc: func() (workers.Handler, error) { return validate, nil },
		Logger:         zerolog.Nop(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Start(ctx); err != nil { // creates the streams and the consumer
		fmt.Println(err)
		return
	}
	defer func() { _ = w.Stop(ctx) }() // drains: finishes and acks what is in flight

	for i, rec := range []string{`{"qty":2}`, `{"qty":0}`, `{"qty":5}`} {
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = []byte(rec)
		m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("order-%d", i+1))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			fmt.Println(err)
			return
		}
	}

	// Read what the step stored; Next waits for each message to arrive.
	read := func(stream string, n int) []string {
		c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			return []string{err.Error()}
		}
		var out []string
		for range n {
			m, err := c.Next(jetstream.FetchMaxWait(20 * time.Second))
			if err != nil {
				return append(out, err.Error())
			}
			line := fmt.Sprintf("%s %s %s", m.Subject(), m.Headers().Get(subjects.HeaderMsgID), m.Data())
			if reason := m.Headers().Get(subjects.HeaderReason); reason != "" {
				line += " reason: " + reason
			}
			out = append(out, line)
		}
		slices.Sort(out) // records are handled concurrently
		return out
	}
	for _, line := range append(read(subjects.StreamValid, 2), read(subjects.StreamDLQ, 1)...) {
		fmt.Println(line)
	}
	// Output:
	// jf.valid.orders order-1/validate {"qty":2}
	// jf.valid.orders order-3/validate {"qty":5}
	// jf.dlq.validate.orders order-2/dlq.validate {"qty":0} reason: qty 0 is not positive
}
