//go:build long

package fleet_test

import "testing"

// TestFailoverLong is TestFailover with ten times the records, so the
// kill lands with much more in flight.
func TestFailoverLong(t *testing.T) {
	t.Parallel()
	runFailover(t, failoverCase{records: 20000})
}

// TestFailoverBulk runs the failover with bulk messages of 50 records.
func TestFailoverBulk(t *testing.T) {
	t.Parallel()
	runFailover(t, failoverCase{records: 20000, bulk: 50})
}
