package subjects

import "time"

// Beat is the JSON body every worker publishes on
// jf.hb.<step>.<worker> every few seconds. Fields are only ever added.
type Beat struct {
	Worker   string    `json:"worker"`
	Step     string    `json:"step"`
	Dataset  string    `json:"dataset"`
	Consumer string    `json:"consumer,omitempty"`
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Time     time.Time `json:"time"`
	// IntervalMS is how often this worker beats; the supervisor marks it
	// stale after three missed beats.
	IntervalMS int64 `json:"interval_ms"`
	// State is running, paused, draining or stopped (the goodbye beat).
	State    string         `json:"state"`
	InFlight int64          `json:"in_flight"`
	Counters WorkerCounters `json:"counters"`
	LastErr  string         `json:"last_error,omitempty"`
	Extra    map[string]any `json:"extra,omitempty"`
}

// WorkerCounters are cumulative since the worker started.
type WorkerCounters struct {
	Messages     int64 `json:"messages"`      // messages received
	Records      int64 `json:"records"`       // records handled successfully
	Outputs      int64 `json:"outputs"`       // records published downstream
	DeadLettered int64 `json:"dead_lettered"` // records sent to the DLQ
	Retried      int64 `json:"retried"`       // messages nak'ed for redelivery
	Redelivered  int64 `json:"redelivered"`   // messages received more than once
	Crashes      int64 `json:"crashes"`       // handler panics
	Acked        int64 `json:"acked"`         // messages acked or terminated
}

// Worker states in heartbeats.
const (
	StateRunning  = "running"
	StatePaused   = "paused"
	StateDraining = "draining"
	StateStopped  = "stopped"
	StateStarting = "starting"
)
