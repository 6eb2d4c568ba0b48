package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/workers/message"
)

// RetryConfig configures [Retry].
type RetryConfig struct {
	// MaxDeliver is the consumer's; on that delivery a failing message is
	// dead-lettered instead of retried. 0 or less: retry for ever.
	MaxDeliver int
	// BackoffMin and BackoffMax bound the redelivery delay, which doubles
	// per delivery.
	BackoffMin, BackoffMax time.Duration
}

// Retry turns the handler's result into each delivery's verdict: the
// ack decision of the package doc of workers, in one place.
//
// On success the batch's rejects become dead letters of their deliveries,
// and a record-mode message whose record was rejected is terminated. On
// a transient error (a panic included) nothing of the batch is
// published: each delivery is nak'ed with a delay that doubles per
// delivery (or the one a RetryAfter asked for), and on its MaxDeliver-th
// delivery dead-lettered whole, with the error as the reason, and
// terminated.
func Retry(cfg RetryConfig) message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) error {
			err := next(ctx, b)
			if err == nil {
				rejected(b)
				return nil
			}
			for _, d := range b.Deliveries {
				d.Outputs, d.Dead = d.Outputs[:0], d.Dead[:0]
				delivered := d.Meta.NumDelivered
				if cfg.MaxDeliver > 0 && delivered >= uint64(cfg.MaxDeliver) {
					reason := fmt.Sprintf("gave up after %d deliveries: %v", delivered, err)
					d.Dead = append(d.Dead, message.DeadLetter{Index: -1, Data: d.Msg.Data(), Reason: reason})
					d.Verdict = message.Verdict{Action: message.Term, Reason: reason, Err: err}
					continue
				}
				d.Verdict = message.Verdict{Action: message.Nak, Delay: cfg.Delay(err, delivered), Err: err}
			}
			return err
		}
	}
}

// Delay is how long a message that failed with err on its delivered-th
// delivery waits for the next: what a RetryAfter asked for, else
// BackoffMin doubled per delivery up to BackoffMax.
func (cfg RetryConfig) Delay(err error, delivered uint64) time.Duration {
	if d, ok := message.RetryDelay(err); ok {
		return d
	}
	return backoff.Delay(cfg.BackoffMin, cfg.BackoffMax, int(delivered))
}

// rejected moves the batch's rejects to their deliveries' dead letters.
func rejected(b *message.Batch) {
	for _, r := range b.Rejects {
		if r.Index < 0 || r.Index >= b.Len() {
			continue
		}
		d := b.DeliveryOf(r.Index)
		i := r.Index - d.First
		d.Dead = append(d.Dead, message.DeadLetter{Index: i, Data: d.Lines[i], Reason: r.Err.Error()})
	}
	for _, d := range b.Deliveries {
		if len(d.Dead) > 0 && !d.Bulk {
			d.Verdict = message.Verdict{Action: message.Term, Reason: d.Dead[0].Reason}
		}
	}
}
