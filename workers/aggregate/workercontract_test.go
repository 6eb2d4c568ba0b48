package aggregate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestWorkerContract runs the worker contract suite on the aggregate step:
// an intake owning the one partition of a clean stage, on a DuckDB engine
// and data dir of its own. It publishes nothing; its effect is the records
// committed to its journal (de-duplicated on the key) before the ack.
func TestWorkerContract(t *testing.T) {
	t.Parallel()
	ds := aggregate.DatasetConfig{
		Name: "orders", Key: "order_id",
		Schema: []aggregate.Column{
			{Name: "order_id", Type: "VARCHAR"},
			{Name: "customer_id", Type: "VARCHAR"},
			{Name: "amount", Type: "DOUBLE"},
			{Name: "currency", Type: "VARCHAR"},
			{Name: "amount_usd", Type: "DOUBLE"},
			{Name: "country", Type: "VARCHAR"},
			{Name: "ts", Type: "TIMESTAMPTZ"},
		},
	}
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		eng, err := aggregate.OpenEngine(aggregate.EngineConfig{MemoryLimit: "256MB", Threads: 1, TempDir: t.TempDir()})
		require.NoError(t, err)
		in, err := aggregate.NewIntake(aggregate.IntakeConfig{Engine: eng, DataDir: t.TempDir(), Dataset: ds, Logger: env.Log})
		require.NoError(t, err)
		require.NoError(t, in.Start(t.Context()))
		require.NoError(t, in.OpenPartition(t.Context(), 0))
		// Registered before the worker's: the worker stops first.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			require.NoError(t, in.Stop(ctx))
			require.NoError(t, eng.Close())
		})
		// One partition: the worker of partition 0 reads every record.
		cfg := in.WorkerConfig(workers.Config{Streams: subjects.StreamOptions{Partitions: 1}}, 0, 1)
		return workertest.Step{
			Config:  cfg,
			Subject: subjects.CleanKey("orders", subjects.KeyToken("o")),
			ValidFunc: func(i int) []byte {
				return fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-1","amount":%d,"currency":"USD","amount_usd":%d,"country":"US","ts":"2026-10-01T10:00:00Z"}`, i, 10+i, 10+i)
			},
			Invalid:     []byte(`not json`),
			Reason:      "record is not a JSON object",
			EffectsFunc: func(context.Context) (int, error) { return int(in.Stats().Records), nil },
		}
	}, workertest.Features{})
}
