package middleware

import (
	"context"
	"runtime/debug"

	"github.com/jetfleet/jetfleet/workers/message"
)

// Recover turns a panic of the handler into a *message.PanicError, with
// the stack, so a crashing handler costs its batch a retry (and the
// worker a handler rebuild), not the process.
func Recover() message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = &message.PanicError{Value: v, Stack: debug.Stack()}
				}
			}()
			return next(ctx, b)
		}
	}
}
