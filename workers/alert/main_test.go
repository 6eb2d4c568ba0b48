package alert_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Webhook header values expand ${VAR}; tests run in parallel, so the
	// variable is set once for the process.
	_ = os.Setenv("JF_TEST_TOKEN", "secret")
	goleak.VerifyTestMain(m,
		// nats-server and the client keep a few process-wide goroutines.
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go.(*Conn).doReconnect"),
		goleak.IgnoreTopFunction("time.Sleep"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"), // httptest keep-alive conns closing
	)
}
