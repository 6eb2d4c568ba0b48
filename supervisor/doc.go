// Package supervisor keeps the fleet running and visible.
//
// In one process, a [Tree] runs workers as children and restarts a failed
// one with exponential backoff; more than MaxRestarts failures within
// Window escalate and leave that child failed (restart intensity, as in an
// OTP supervisor).
//
//	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
//	tree.Add("validate/orders", w.Run)
//	err := tree.Run(ctx) // returns when ctx is cancelled and every child has drained
package supervisor
