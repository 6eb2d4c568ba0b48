// Package workertest holds what tests need to run workers: [StartWorker]
// runs one for the length of a test, and [Run] is the contract suite every
// pipeline step must pass, as Watermill's pubsub/tests.TestPubSub is for
// its Pub/Subs and River's riverdrivertest for its drivers.
//
// Test code only: production packages never import it. It imports the
// runtime (workers and its message types) and no step worker, so any
// package's tests may use it, the supervisor's included; each step's
// adapter lives in that step's own workercontract_test.go.
//
// # The contract
//
// Run starts a fresh embedded JetStream server per subtest, builds the step
// on it with the adapter's [NewStepFunc], and checks, each as a subtest:
//
//	Record            one record per message: every effect once; an input is acked only once its effect is stored
//	Bulk              an NDJSON chunk (Jf-Records): every record's effect; a bad record of a chunk dead-lettered by index
//	AckAfterPubAck    outputs JetStream does not take keep the input un-acked, and it is redelivered until they are stored
//	PartialPublish    a chunk whose outputs were stored in part: redelivered, the rest stored, none twice
//	DeadLetterFirst   a record is terminated only after its dead letter is stored
//	DerivedIDs        inputs consumed again (a new consumer) publish outputs the server drops: effects counted once
//	Permanent         a Permanent error dead-letters the record with its reason and the contract's headers
//	Trace             the input's W3C trace goes on with its outputs and its dead letter
//	Transient         a transient error is retried (redelivered), then succeeds
//	MaxDeliver        a message failing on every delivery is dead-lettered whole at MaxDeliver, and the worker goes on
//	MaxDeliverOutputs outputs refused on every delivery: the input is dead-lettered whole at MaxDeliver too
//	Panic             a panicking handler is rebuilt; the record is redelivered, not lost
//	Drain             Stop finishes and acks what is in flight; nothing is lost
//	StopMidStream     a worker stopped while inputs stream in: what it acked took effect, the next takes the rest, once
//
// Transient errors, panics and slow handlers are injected by a middleware
// innermost in the worker's chain (workers.Config.Middleware), right around
// the step's own handler, so the step's handler and its rebuild are real.
// Refused outputs and dead letters are real too: the suite deletes the
// stream, or fills it (Discard new) when the step writes to the stream it
// reads. [Features] says which parts apply to a step; a step in another
// language (Step.StartFunc, a process of its own) runs those that need no
// injection.
//
//	func TestWorkerContract(t *testing.T) {
//		workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
//			h, err := validate.New(ds)
//			require.NoError(t, err)
//			return workertest.Step{
//				Config:      workers.Config{Step: subjects.StepValidate, Dataset: "orders", NewHandlerFunc: ...},
//				ValidFunc:   func(i int) []byte { ... },
//				Invalid:     []byte(`{"amount":-1}`),
//				Reason:      "below the minimum",
//				EffectsFunc: workertest.OutputRecords(env.JS, subjects.Valid("orders")),
//			}
//		}, workertest.Features{})
//	}
package workertest
