package fleet_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

func TestMain(m *testing.M) {
	embeddedtest.RunNodeIfAsked() // TestFailover's cluster nodes are this binary
	goleak.VerifyTestMain(m,
		// nats-server, nats.go and DuckDB keep a few process-wide goroutines.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).doReconnect"),
		goleak.IgnoreTopFunction("time.Sleep"),
	)
}
