package fleet_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// fxPipeline writes a pipeline whose transform enriches orders from the
// external table fx (a CSV file), and returns it loaded.
func fxPipeline(t *testing.T) *pipeline.Spec {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fx.csv"), []byte("currency,rate\nUSD,1\nEUR,1.08\n"), 0o600))
	path := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`name: fx
datasets:
  orders:
    key: order_id
    schema:
      - {name: order_id, type: VARCHAR}
      - {name: currency, type: VARCHAR}
      - {name: rate, type: DOUBLE}
    transform:
      - lookup: {table: fx, key: currency, fields: {rate: rate}, missing: dlq}
lookups:
  fx:
    key: currency
    csv: fx.csv
    types: {rate: number}
`), 0o600))
	spec, err := pipeline.Load(path)
	require.NoError(t, err)
	return spec
}

// runLookupFleet builds steps of spec, prepares the fleet and runs its members
// until the test ends.
func runLookupFleet(t *testing.T, nc *nats.Conn, spec *pipeline.Spec, steps ...string) *fleet.Fleet {
	t.Helper()
	fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)), Spec: spec, Steps: steps, DataDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, fl.Prepare(t.Context()))
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for _, m := range fl.Members {
		g.Go(func() error { return m.Run(ctx) })
	}
	t.Cleanup(func() {
		cancel()
		require.NoError(t, g.Wait())
		stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		require.NoError(t, fl.Close(stopCtx))
	})
	return fl
}

// In worker mode nothing loads an external lookup table for the step
// (`jetfleet dev` does, `jetfleet worker` does not). Before, the transform
// dead-lettered every record (missing: dlq) while the table was empty.
// Now it waits, consuming nothing, says which table and how to load it,
// and once the table is loaded every record goes through: none is
// dead-lettered.
func TestTransformWaitsForAnEmptyExternalTable(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	spec := fxPipeline(t)
	fl := runLookupFleet(t, nc, spec, "validate", "transform")

	const n = 5
	for i := range n {
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = fmt.Appendf(nil, `{"order_id":"o-%d","currency":%q}`, i, []string{"USD", "EUR"}[i%2])
		m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("o-%d", i))
		_, err := js.PublishMsg(t.Context(), m)
		require.NoError(t, err)
	}
	want := fmt.Sprintf("transform/orders#1: lookup table fx is empty: load it with `jetfleet lookup load --pipeline %s fx`", spec.File)
	embeddedtest.CheckFor(t, 20*time.Second, embeddedtest.PollEvery, func() error {
		valid, waiting := embeddedtest.StreamMsgs(t, js, subjects.StreamValid), strings.Join(fl.Waiting(), "; ")
		if valid != uint64(n) || waiting != want {
			return fmt.Errorf("validated %d of %d, and the transform waits: %q", valid, n, waiting)
		}
		return nil
	})
	var tw []string
	for _, w := range fl.Workers() {
		if snap := w.Snapshot(); snap.Step == subjects.StepTransform.Name {
			tw = append(tw, snap.State, snap.Waiting)
		}
	}
	require.Equal(t, []string{subjects.StateWaiting, strings.TrimPrefix(want, "transform/orders#1: ")}, tw, "its heartbeat says so")
	cons, err := js.Consumer(t.Context(), subjects.StreamValid, subjects.ConsumerName(subjects.StepTransform.Name, "orders"))
	require.NoError(t, err)
	info, err := cons.Info(t.Context())
	require.NoError(t, err)
	require.Zero(t, info.Delivered.Consumer, "a waiting step consumes nothing")
	require.Equal(t, uint64(n), info.NumPending)

	fx := spec.Lookup("fx")
	rows, err := fx.ReadRows()
	require.NoError(t, err)
	_, err = transform.LoadTable(t.Context(), js, fx, rows, 1)
	require.NoError(t, err)
	embeddedtest.WaitStream(t, js, subjects.StreamClean, n, 20*time.Second)
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ), "none dead-lettered")
	require.Empty(t, fl.Waiting())
}

// A table given inline in the pipeline file needs no `lookup load` in
// worker mode: the first workers to start write its rows into the empty
// bucket, each row once however many start together; a table that was
// loaded already keeps what was loaded.
func TestInlineTableIsLoadedOnceWhenWorkersStartTogether(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	spec := examples.Shop() // fx: three inline rows

	fleets := make([]*fleet.Fleet, 3)
	for i := range fleets {
		fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)), Spec: spec, Steps: []string{"transform"}, DataDir: t.TempDir()})
		require.NoError(t, err)
		fleets[i] = fl
		t.Cleanup(func() { require.NoError(t, fl.Close(context.Background())) })
	}
	var g errgroup.Group
	for _, fl := range fleets {
		g.Go(func() error { return fl.Prepare(ctx) })
	}
	require.NoError(t, g.Wait())
	for _, fl := range fleets {
		require.Empty(t, fl.Waiting())
	}
	// Each row written once: the rows hold the bucket's first three
	// revisions (a row written again would hold a later one); the loaded
	// markers come after them.
	kv, err := js.KeyValue(ctx, subjects.LookupBucket("fx"))
	require.NoError(t, err)
	var revisions []uint64
	for _, cur := range []string{"USD", "EUR", "GBP"} {
		e, err := kv.Get(ctx, subjects.LookupKey(cur))
		require.NoError(t, err)
		revisions = append(revisions, e.Revision())
	}
	require.ElementsMatch(t, []uint64{1, 2, 3}, revisions, "three rows, each written once")
	marker, err := kv.Get(ctx, subjects.LookupLoadedKey)
	require.NoError(t, err)
	require.Greater(t, marker.Revision(), uint64(3))

	// Records go through the first fleet's transform with the rows.
	fl := runLookupFleet(t, nc, spec, "transform")
	for i, cur := range []string{"USD", "EUR", "GBP"} {
		m := nats.NewMsg(subjects.Valid("orders"))
		m.Data = fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c","amount":10,"currency":%q,"country":"US","ts":"2026-10-01T10:00:00Z"}`, i, cur)
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	embeddedtest.WaitStream(t, js, subjects.StreamClean, 3, 20*time.Second)
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ))
	require.Empty(t, fl.Waiting())

	// A loaded table is left alone: its bucket holds rows.
	other := examples.Shop().Lookup("fx")
	other.Name = "fx2"
	_, err = transform.LoadTable(ctx, js, other, []map[string]any{{"currency": "USD", "rate": 2}}, 1)
	require.NoError(t, err)
	tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: js, Tables: []string{"fx2"}, Inline: []*pipeline.Lookup{other}})
	require.NoError(t, err)
	require.NoError(t, tables.Start(ctx))
	t.Cleanup(func() { require.NoError(t, tables.Stop(context.Background())) })
	require.Equal(t, 1, tables.Len("fx2"))
	row, ok := tables.Row("fx2", "USD")
	require.True(t, ok)
	require.Equal(t, "2", fmt.Sprint(row["rate"]))
}
