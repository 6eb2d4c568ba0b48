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
	// State is starting, waiting, running, paused, draining or stopped
	// (the goodbye beat).
	State string `json:"state"`
	// Waiting says what a worker in state waiting waits for before it
	// consumes anything (an empty lookup table, and how to load it).
	Waiting  string         `json:"waiting,omitempty"`
	InFlight int64          `json:"in_flight"`
	Counters WorkerCounters `json:"counters"`
	LastErr  string         `json:"last_error,omitempty"`
	Extra    map[string]any `json:"extra,omitempty"`
	// Conn is the worker's NATS connection: which server, how often it
	// reconnected (a cluster node died, a server restarted).
	Conn *ConnState `json:"conn,omitempty"`
	// Contract is what the dataset's schema contract did since the
	// worker's handler was built (transform step only).
	Contract *ContractCounts `json:"contract,omitempty"`
}

// ContractCounts are a schema contract's decisions: per field outside
// the schema, the records that had it. The contract says what was done
// to them (evolve: kept, discard_columns: dropped, freeze: rejected).
type ContractCounts struct {
	Contract string           `json:"contract"`
	Fields   map[string]int64 `json:"fields"`
}

// ConnState is a worker's NATS connection as it last saw it.
type ConnState struct {
	// Status is the client's connection status (CONNECTED, RECONNECTING, ...).
	Status string `json:"status"`
	// URL is the server it is connected to, credentials redacted.
	URL string `json:"url,omitempty"`
	// Server is that server's name (the cluster node).
	Server string `json:"server,omitempty"`
	// Reconnects counts reconnects since the process connected.
	Reconnects uint64 `json:"reconnects"`
	// LastReconnect is when the worker saw its connection come back.
	LastReconnect time.Time `json:"last_reconnect,omitzero"`
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
	// Republished counts outputs published again because the cluster did
	// not take them (between leaders, a lost publish).
	Republished int64 `json:"republished"`
}

// Worker states in heartbeats.
const (
	StateRunning  = "running"
	StatePaused   = "paused"
	StateDraining = "draining"
	StateStopped  = "stopped"
	StateStarting = "starting"
	// StateWaiting is a bound worker that consumes nothing yet because
	// its handler lacks something it needs (Beat.Waiting says what).
	StateWaiting = "waiting"
)
