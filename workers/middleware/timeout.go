package middleware

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jetfleet/jetfleet/workers/message"
)

// Timeout bounds the handling of a batch by d, which the worker keeps
// below the consumer's AckWait so JetStream does not redeliver work still
// in progress. A batch that took longer than progressAfter tells the
// server its messages are still in progress, so their ack deadline starts
// again while they are published and settled.
//
// The handler's context has the deadline and fails with
// context.DeadlineExceeded as one of context.WithTimeout would, but costs
// no timer and no context per batch: one watchdog timer is re-armed, and
// one cancellable context serves batch after batch until a deadline or
// the parent ends it (a context.WithTimeout per message was a noticeable
// share of a record's cost).
func Timeout(d, progressAfter time.Duration) message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		wd := &watchdog{}
		return func(ctx context.Context, b *message.Batch) error {
			start := time.Now()
			hctx, disarm := wd.arm(ctx, d, start.Add(d))
			err := next(hctx, b)
			disarm()
			if time.Since(start) > progressAfter {
				for _, dl := range b.Deliveries {
					_ = dl.Msg.InProgress()
				}
			}
			return err
		}
	}
}

// watchdog cancels the context of the batch it is armed for when the
// batch outlives its deadline.
type watchdog struct {
	mu     sync.Mutex
	parent context.Context
	ctx    context.Context // a child of parent, reused while nothing cancelled it
	cancel context.CancelCauseFunc
	timer  *time.Timer
	// armed cancels the batch in progress, nil between batches: a timer
	// that fires late finds nothing to cancel.
	armed context.CancelCauseFunc
}

func (w *watchdog) arm(parent context.Context, d time.Duration, deadline time.Time) (context.Context, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ctx == nil || w.parent != parent || w.ctx.Err() != nil {
		if w.cancel != nil {
			w.cancel(nil)
		}
		w.parent = parent
		w.ctx, w.cancel = context.WithCancelCause(parent)
	}
	w.armed = w.cancel
	if w.timer == nil {
		w.timer = time.AfterFunc(d, w.fire)
	} else {
		w.timer.Reset(d)
	}
	return deadlineCtx{Context: w.ctx, deadline: deadline}, w.disarm
}

func (w *watchdog) disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.timer.Stop() {
		// It fired, or is about to: this context is done with.
		w.ctx = nil
	}
	w.armed = nil
}

func (w *watchdog) fire() {
	w.mu.Lock()
	cancel := w.armed
	w.mu.Unlock()
	if cancel != nil {
		cancel(context.DeadlineExceeded)
	}
}

// deadlineCtx is a cancellable context that reports its deadline, and
// context.DeadlineExceeded as its error once the watchdog cancelled it
// for passing the deadline.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (c deadlineCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c deadlineCtx) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), context.DeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}
