package workertest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers"
)

// stopTimeout bounds a worker's stop at the end of a test: a drain that
// hangs fails the test instead of the whole run.
const stopTimeout = 20 * time.Second

// StartWorker builds a worker from cfg, starts it (it returns once the
// consumer is bound) and stops it when the test ends, failing the test if
// the stop takes longer than 20s.
func StartWorker(tb testing.TB, cfg workers.Config) *workers.Worker {
	tb.Helper()
	w, err := workers.New(cfg)
	require.NoError(tb, err)
	require.NoError(tb, w.Start(tb.Context()))
	tb.Cleanup(func() { StopWorker(tb, w) })
	return w
}

// StopWorker drains w, failing the test if that takes longer than 20s.
// Stopping a stopped worker does nothing.
func StopWorker(tb testing.TB, w *workers.Worker) {
	tb.Helper()
	// Not tb.Context(): in a Cleanup it is already cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	require.NoError(tb, w.Stop(ctx), "worker %s did not stop within %s", w.ID(), stopTimeout)
}
