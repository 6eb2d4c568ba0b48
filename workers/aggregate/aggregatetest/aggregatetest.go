// Package aggregatetest runs the aggregate step of one dataset in a test,
// fed directly rather than through NATS: one engine, one intake owning
// partition 0, one mart builder, on a data dir of the test's.
package aggregatetest

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
)

// Step is a running aggregate step.
type Step struct {
	t       testing.TB
	eng     *aggregate.Engine
	intake  *aggregate.Intake
	builder *aggregate.MartBuilder
	h       workers.BatchHandler
	seq     uint64
	stopped bool
}

// Start runs the step of ds and its marts in dataDir until the test ends
// (or Stop). Marts are written only by Flush and Stop.
func Start(t testing.TB, dataDir string, ds aggregate.DatasetConfig, ms []aggregate.Mart) *Step {
	t.Helper()
	log := zerolog.New(zerolog.NewTestWriter(t))
	eng, err := aggregate.OpenEngine(aggregate.EngineConfig{MemoryLimit: "256MB", Threads: 1, TempDir: t.TempDir()})
	require.NoError(t, err)
	slow := make([]aggregate.Mart, len(ms))
	for i, m := range ms {
		m.FlushRecords, m.FlushInterval = 1<<30, time.Hour
		slow[i] = m
	}
	b, err := aggregate.NewMartBuilder(aggregate.MartBuilderConfig{Engine: eng, DataDir: dataDir, Dataset: ds, Marts: slow, Logger: log})
	require.NoError(t, err)
	in, err := aggregate.NewIntake(aggregate.IntakeConfig{Engine: eng, DataDir: dataDir, Dataset: ds, Builder: b, Logger: log})
	require.NoError(t, err)
	require.NoError(t, in.OpenPartition(t.Context(), 0))
	h, err := in.WorkerConfig(workers.Config{}, 0, 1).NewBatchHandlerFunc()
	require.NoError(t, err)
	s := &Step{t: t, eng: eng, intake: in, builder: b, h: h}
	t.Cleanup(s.Stop)
	return s
}

// Commit commits records as one batch, a message each, and returns the
// rejected ones.
func (s *Step) Commit(records ...[]byte) []workers.Reject {
	s.t.Helper()
	batch := make([]workers.Record, len(records))
	for i, r := range records {
		s.seq++
		batch[i] = workers.Record{Data: r, Seq: s.seq, Published: time.Now()}
	}
	rejected, err := s.h.HandleBatch(s.t.Context(), batch)
	require.NoError(s.t, err)
	return rejected
}

// Flush moves what is committed to the lake and writes the marts.
func (s *Step) Flush() {
	s.t.Helper()
	require.NoError(s.t, s.intake.Flush(s.t.Context()))
	require.NoError(s.t, s.builder.Build(s.t.Context()))
}

// Stop flushes and stops the step; the data dir then holds the final
// marts. Idempotent.
func (s *Step) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(s.t, s.intake.Stop(ctx))
	require.NoError(s.t, s.builder.Build(ctx))
	require.NoError(s.t, s.builder.Stop(ctx))
	require.NoError(s.t, s.eng.Close())
}

// Fold runs the step over records, one batch, and stops it.
func Fold(t testing.TB, dataDir string, ds aggregate.DatasetConfig, ms []aggregate.Mart, records ...[]byte) {
	t.Helper()
	s := Start(t, dataDir, ds, ms)
	require.Empty(t, s.Commit(records...))
	s.Stop()
}
