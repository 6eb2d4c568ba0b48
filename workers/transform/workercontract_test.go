package transform_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// order is valid order i of the shop, as validate passes it on.
func order(i int, currency string) []byte {
	return fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-1","amount":%d,"currency":%q,"country":"US","ts":"2026-10-01T10:00:00Z"}`, i, 10+i, currency)
}

// TestWorkerContract runs the worker contract suite on the transform step
// of the shop's orders, built as the fleet builds it: its fx table loaded
// into KV, and the worker waiting for it before it consumes.
func TestWorkerContract(t *testing.T) {
	t.Parallel()
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		spec := examples.Shop()
		ds := spec.Dataset("orders")
		require.NoError(t, transform.LoadTables(t.Context(), env.JS, spec, 1))
		tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: env.JS, Tables: transform.TablesOf(ds), Logger: env.Log})
		require.NoError(t, err)
		require.NoError(t, tables.Start(t.Context()))
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, tables.Stop(ctx))
		})
		th, err := transform.New(ds, tables)
		require.NoError(t, err)
		h := th.WithPartitions(subjects.DefaultPartitions)
		used := transform.TablesOf(ds)
		return workertest.Step{
			Config: workers.Config{
				Step: subjects.StepTransform, Dataset: "orders",
				NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
				WaitFunc: func(ctx context.Context, waitingFunc func(string)) error {
					return tables.Wait(ctx, used, waitingFunc)
				},
			},
			ValidFunc:   func(i int) []byte { return order(i, "usd") },
			Invalid:     order(99, "BTC"), // no fx rate, and the lookup says missing: dlq
			Reason:      `lookup fx: no row for currency="BTC"`,
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Clean("orders")+".>"),
		}
	}, workertest.Features{})
}

// TestRekeyWorkerContract runs the suite on the rekey step: clean records
// published without a key token come back with it, in the stream they
// were read from.
func TestRekeyWorkerContract(t *testing.T) {
	t.Parallel()
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		rk, err := transform.NewRekey(examples.Shop().Dataset("orders"), subjects.DefaultPartitions)
		require.NoError(t, err)
		return workertest.Step{
			Config: workers.Config{
				Step: subjects.StepRekey, Dataset: "orders",
				NewHandlerFunc: func() (workers.Handler, error) { return rk, nil },
			},
			ValidFunc:   func(i int) []byte { return order(i, "USD") },
			Invalid:     []byte(`not json`),
			Reason:      "record is not valid JSON",
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Clean("orders")+".>"),
		}
	}, workertest.Features{})
}
