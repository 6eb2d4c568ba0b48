package workers

import "github.com/jetfleet/jetfleet/subjects"

// ContractReporter is a handler that applies a schema contract (the
// transform step's); its worker puts the counts in every heartbeat, so
// status shows drift. Safe for concurrent use.
type ContractReporter interface {
	ContractCounts() *subjects.ContractCounts
}
