package middleware

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetfleet/jetfleet/workers/message"
)

// MetricsConfig says where [Metrics] reports.
type MetricsConfig struct {
	// Seconds observes the handler's time per batch (a worker's series of
	// jetfleet_handler_seconds). Optional.
	Seconds prometheus.Observer
	// Records counts the records handled and not rejected (the worker's
	// heartbeat counter). Optional.
	Records *atomic.Int64
}

// Metrics measures the handler: its time per batch, whatever the
// outcome, and the records it handled when it did not fail.
func Metrics(cfg MetricsConfig) message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) error {
			start := time.Now()
			err := next(ctx, b)
			if cfg.Seconds != nil {
				cfg.Seconds.Observe(time.Since(start).Seconds())
			}
			if err == nil && cfg.Records != nil {
				cfg.Records.Add(int64(b.Len() - len(b.Rejects)))
			}
			return err
		}
	}
}
