// Package supervisor keeps the fleet running and visible.
//
// # In one process
//
// A [Tree] runs workers as children and restarts a failed one with
// exponential backoff; more than MaxRestarts failures within Window
// escalate and leave that child failed (restart intensity, as in an OTP
// supervisor). A failed child shows in status as its step failed.
//
//	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
//	tree.Add("validate/orders", w.Run)
//	err := tree.Run(ctx) // returns when ctx is cancelled and every child has drained
//
// # Across processes
//
// A [Supervisor] folds every heartbeat (jf.hb.<step>.<worker>) into the
// fleet KV bucket with a per-key TTL, judges liveness (alive, stale after
// 3 missed beats, dead past the TTL, stopped after a goodbye), logs each
// transition and publishes it on jf.sup.events. It reads the JetStream
// max-deliveries and terminated advisories (kept in JF_ADVISORIES, so none
// is lost while it is down) and copies a message its worker did not
// dead-letter itself to jf.dlq.<step>.<dataset>, with the last error the
// step reported. It keeps a ledger of the records in JF_INGEST and JF_DLQ
// (headers only, once per message) for the books in status.
//
//	sup, err := supervisor.New(supervisor.Config{Conn: nc, Logger: log, Tree: tree})
//	err = sup.Start(ctx) // non-blocking; sup.Stop(ctx) drains
//
// # Status
//
// [Snapshot] reads JetStream directly (consumer infos, dead-letter
// counts, the fleet bucket), so `jetfleet status` works with no
// supervisor running and says so; its Balance keeps each dataset's books
// (published = clean + dead-lettered + duplicates + in flight, in
// records). [WaitIdle] blocks until the pipeline is drained and nothing
// is unaccounted for. [NewHandler] serves /metrics, /healthz, /readyz and
// /status. [ListDeadLetters], [Replay] and [PurgeDeadLetters] back
// `jetfleet dlq`.
package supervisor
