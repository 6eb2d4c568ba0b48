// Package workers is the actor runtime every pipeline step runs on, and the
// step workers built on it.
//
// A [Worker] owns one durable pull consumer (shared by every replica of its
// step and dataset) as its mailbox. It reads like a message router: a fetch
// loop takes messages, the step's handler runs inside a chain of middleware
// (package middleware), and one settle path acks, naks or terminates each
// message after publishing what it produced:
//
//	worker.go      lifecycle: New, Start, Stop, Run, bind the consumer, drain
//	fetch.go       the fetch loop: pull, batch, take messages apart, pause
//	router.go      the handler inside its middleware, rebuilt after a crash
//	middleware/    trace, retry/dead-letter, recover, metrics, timeout
//	settle.go      ack, nak and term, in order, after the pub-acks
//	publish.go     outputs with derived message ids, republish on elections
//	deadletter.go  dead letters with the original's context and the reason
//	heartbeat.go, control.go, micro.go, conn.go
//
// For each message the handler is called once per record (a bulk message
// carries several); a [BatchHandler] gets many messages' records at once.
// Outputs are published asynchronously with message ids derived from the
// input's, and the input is acked only after JetStream has acknowledged
// every output. The handler's return value is the ack decision:
//
//	nil                    outputs published, then Ack
//	Permanent(err)         the record is dead-lettered with err as reason, then Term
//	RetryAfter(d, err)     NakWithDelay(d)
//	any other error        Nak with exponential backoff; dead-lettered at MaxDeliver
//
// A panicking handler is recovered: the record is treated as a transient
// failure (its panic is the reason if it reaches the dead-letter stream),
// the handler is rebuilt after a backoff, and too many crashes in a window
// stop the worker with [ErrTooManyRestarts] for its supervisor to handle.
//
// # Lifecycle
//
// [Worker.Run] blocks until its context is cancelled, then drains: it stops
// fetching, finishes and acks what is in flight, and returns nil. After
// Config.DrainTimeout it cancels handlers and returns; whatever was not
// acked is redelivered to another replica. [Worker.Start] and [Worker.Stop]
// wrap Run for callers that want a non-blocking start.
//
//	w, err := workers.New(workers.Config{Conn: nc, Step: subjects.StepValidate, Dataset: "orders", NewHandlerFunc: ...})
//	err = w.Run(ctx)
package workers
