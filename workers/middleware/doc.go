// Package middleware holds the worker runtime's middleware, one concern
// per file, each a [message.Middleware] that wraps record and batch
// handlers alike:
//
//	Trace    the traceparent of what a delivery produces (a child span)
//	Retry    the handler's error as each delivery's verdict: rejects are
//	         dead-lettered, a transient failure naks with backoff, and on
//	         the last allowed delivery dead-letters the message whole
//	Recover  a handler panic as a *message.PanicError
//	Metrics  the handler's time per batch and the records it handled
//	Timeout  the handler's deadline, and InProgress for long batches
//
// The worker composes them in that order, outermost first; the settle
// path then carries out the verdicts.
package middleware
