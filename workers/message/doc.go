// Package message holds what the worker runtime and its middleware share:
// the records a handler sees and the outputs it makes ([Record],
// [Output], [Reject]), the error marks that are the ack decision
// ([Permanent], [RetryAfter], [PanicError]), and the unit the handler
// chain processes: a [Batch] of [Delivery] values, one per fetched
// JetStream message, each ending with a [Verdict] for the one settle
// path (ack, term, nak).
//
// Package workers re-exports the handler-facing types (workers.Record is
// message.Record); step code imports workers, middleware imports this.
//
// # The chain
//
//	h := message.Chain(handler, middleware.Retry(...), middleware.Recover(), middleware.Timeout(...))
//	err := h(ctx, batch) // batch.Deliveries[i].Verdict says how to settle each message
package message
