package middleware

import (
	"context"
	"time"

	"github.com/jetfleet/jetfleet/workers/message"
)

// Timeout bounds the handling of a batch by d, which the worker keeps
// below the consumer's AckWait so JetStream does not redeliver work still
// in progress. A batch that took longer than progressAfter tells the
// server its messages are still in progress, so their ack deadline starts
// again while they are published and settled.
func Timeout(d, progressAfter time.Duration) message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) error {
			start := time.Now()
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			err := next(ctx, b)
			if time.Since(start) > progressAfter {
				for _, d := range b.Deliveries {
					_ = d.Msg.InProgress()
				}
			}
			return err
		}
	}
}
