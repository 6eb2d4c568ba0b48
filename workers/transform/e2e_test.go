package transform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// startWorker runs step with handler h on the orders dataset until the
// test ends.
func startWorker(t *testing.T, nc *nats.Conn, step subjects.Step, h workers.Handler) {
	t.Helper()
	workertest.StartWorker(t, workers.Config{
		Conn: nc, Step: step, Dataset: "orders",
		NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
		Logger:         zerolog.New(zerolog.NewTestWriter(t)),
	})
}

// TestShopEndToEnd runs the smoke test's eight records through validate
// and transform workers on a real server, with the fx table in KV, and
// checks the clean records and dead letters exactly.
func TestShopEndToEnd(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	spec := examples.Shop()
	ds := spec.Dataset("orders")
	require.NoError(t, transform.LoadTables(ctx, js, spec, 1))

	tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: js, Tables: transform.TablesOf(ds)})
	require.NoError(t, err)
	require.NoError(t, tables.Start(ctx))
	t.Cleanup(func() { require.NoError(t, tables.Stop(context.Background())) })
	th, err := transform.New(ds, tables)
	require.NoError(t, err)
	vh, err := validate.New(ds)
	require.NoError(t, err)
	startWorker(t, nc, subjects.StepValidate, vh)
	startWorker(t, nc, subjects.StepTransform, th)

	lines := []string{
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","country":"DE","ts":"2026-10-01T23:30:00-02:00"}`,
		`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"s-5","customer_id":"c-3","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"s-6","customer_id":"c-3","amount":"7","currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
		`this line is not json`,
		`{"order_id":"s-8","customer_id":"c-3","amount":7,"currency":"BTC","country":"US","ts":"2026-10-01T10:00:00Z"}`,
	}
	ids := []string{"s-1", "s-2", "s-3", "s-1", "s-5", "s-6", "line-7", "s-8"} // as `publish --id-field order_id` does
	dups := 0
	for i, line := range lines {
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = []byte(line)
		m.Header.Set(subjects.HeaderMsgID, ids[i])
		ack, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
		if ack.Duplicate {
			dups++
		}
	}
	require.Equal(t, 1, dups)

	clean := embeddedtest.WaitStream(t, js, subjects.StreamClean, 3, 10*time.Second)
	require.Equal(t, `{"amount":10,"amount_usd":10,"country":"US","currency":"USD","customer_id":"c-1","order_id":"s-1","ts":"2026-10-01T10:00:00Z"}`, string(clean[0].Data))
	require.Equal(t, `{"amount":20,"amount_usd":21.6,"country":"DE","currency":"EUR","customer_id":"c-1","order_id":"s-2","ts":"2026-10-02T01:30:00Z"}`, string(clean[1].Data))
	require.Equal(t, `{"amount":5.5,"amount_usd":6.985,"country":"GB","currency":"GBP","customer_id":"c-2","email_hash":"fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf","order_id":"s-3","ts":"2026-10-02T07:00:00Z"}`, string(clean[2].Data))
	for i, m := range clean {
		// Stored in its key's partition: jf.clean.orders.<p>.<keytoken>.
		tok := subjects.KeyToken(fmt.Sprintf("s-%d", i+1))
		require.Equal(t, subjects.CleanPartition("orders", subjects.PartitionOf(tok, subjects.DefaultPartitions), tok), m.Subject)
		require.NotEmpty(t, m.Header.Get(subjects.HeaderMsgID))
	}
	dead := embeddedtest.WaitStream(t, js, subjects.StreamDLQ, 4, 10*time.Second)
	for _, d := range dead {
		require.NotEmpty(t, d.Header.Get(subjects.HeaderReason))
		require.Equal(t, "validate", d.Header.Get(subjects.HeaderStep))
	}
	// published 8 = clean 3 + dead 4 + duplicates 1
	require.Equal(t, len(lines), len(clean)+len(dead)+dups)
}

// TestLookupUpdateReachesRunningWorker: a rate changed in KV is used by
// the next record, with no restart.
func TestLookupUpdateReachesRunningWorker(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	spec := examples.Shop()
	ds := spec.Dataset("orders")
	tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: js, Tables: transform.TablesOf(ds)})
	require.NoError(t, err)
	require.NoError(t, tables.Start(ctx))
	t.Cleanup(func() { require.NoError(t, tables.Stop(context.Background())) })
	th, err := transform.New(ds, tables)
	require.NoError(t, err)
	startWorker(t, nc, subjects.StepTransform, th)

	publish := func(id string) {
		m := nats.NewMsg(subjects.Valid("orders"))
		m.Data = []byte(`{"order_id":"` + id + `","customer_id":"c","amount":100,"currency":"EUR","country":"DE","ts":"2026-10-01T10:00:00Z"}`)
		m.Header.Set(subjects.HeaderMsgID, id)
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	// Empty table (not loaded yet): the record waits, retried, instead of
	// being dead-lettered as a currency the table lacks.
	publish("a")
	fx := spec.Lookup("fx")
	_, err = transform.LoadTable(ctx, js, fx, fx.Rows, 1)
	require.NoError(t, err)
	clean := embeddedtest.WaitStream(t, js, subjects.StreamClean, 1, 20*time.Second)
	require.Contains(t, string(clean[0].Data), `"amount_usd":108`)
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ), "nothing dead-lettered while the table was empty")

	// A changed rate reaches the running worker.
	_, err = transform.LoadTable(ctx, js, fx, []map[string]any{{"currency": "USD", "rate": 1}, {"currency": "EUR", "rate": 1.1}, {"currency": "GBP", "rate": 1.27}}, 1)
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 10*time.Second, "the new rate", func() bool {
		row, ok := tables.Row("fx", "EUR")
		return ok && fmt.Sprint(row["rate"]) == "1.1"
	})
	publish("b")
	clean = embeddedtest.WaitStream(t, js, subjects.StreamClean, 2, 10*time.Second)
	require.Contains(t, string(clean[1].Data), `"amount_usd":110`)
}
