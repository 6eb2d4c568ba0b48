package workertest

import (
	"context"
	"sync/atomic"

	"github.com/jetfleet/jetfleet/workers/message"
)

// faultFunc decides the fate of one delivery before the step's handler
// sees it: nil lets the handler run; an error fails the delivery (with
// the rest of its batch) as the handler's own transient error would; a
// panic is a handler crash. id is the input's message id, delivered its
// delivery count.
type faultFunc func(ctx context.Context, id string, delivered uint64) error

// faults is the suite's injection point: a middleware innermost in the
// worker's chain, right around the step's handler, so what it injects
// takes the path a failure of the step's own would.
type faults struct {
	f atomic.Pointer[faultFunc]
}

// set makes f decide every delivery from now on.
func (fs *faults) set(f faultFunc) { fs.f.Store(&f) }

func (fs *faults) middleware() message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) error {
			if f := fs.f.Load(); f != nil {
				for _, d := range b.Deliveries {
					if err := (*f)(ctx, d.ID, d.Meta.NumDelivered); err != nil {
						return err
					}
				}
			}
			return next(ctx, b)
		}
	}
}
