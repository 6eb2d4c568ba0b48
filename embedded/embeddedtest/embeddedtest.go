// Package embeddedtest is the shared test kit: every package's tests use
// it instead of helpers of their own. Test code only: production packages
// never import it. It imports [embedded] and no other package of ours, so
// any package's tests can import it without a cycle.
//
//   - servers: [Server], [JetStream] and [Connect] give a test a real
//     JetStream server in a temp dir ([ForExample] an Example function);
//     [StartNodes] a cluster of processes.
//   - waiting: [CheckFor], [WaitFor] and [WaitOrTimeout], never time.Sleep,
//     with timeouts scaled by [Timeout] for slow CI machines.
//   - streams: [StreamMsgs], [SubjectMsgs], [ReadStream], [WaitStream] and
//     [ConsumerIdle] read what a stream or consumer holds.
//   - ports: [FreePort], [FreePorts], [FreePortBlock].
//   - micro services: [MicroDiscover].
//
// # Usage
//
//	func TestStep(t *testing.T) {
//		t.Parallel()
//		nc, js := embeddedtest.JetStream(t) // closed and shut down when t ends
//		// ... start the step on nc, publish its input ...
//		valid := embeddedtest.WaitStream(t, js, subjects.StreamValid, 3, 10*time.Second)
//		require.Equal(t, "o-1/validate", valid[0].Header.Get(subjects.HeaderMsgID))
//		embeddedtest.WaitFor(t, 10*time.Second, "the input acked", func() bool {
//			return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamIngest, "validate_orders") == nil
//		})
//	}
package embeddedtest

import (
	"os"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
)

// Server starts an embedded JetStream server on a random loopback port
// with its store in a temp dir, shut down when the test ends. Server logs
// go to the test log when NATS_LOGGING=debug.
func Server(tb testing.TB) *embedded.Server {
	tb.Helper()
	quiet := os.Getenv("NATS_LOGGING") != "debug"
	srv, err := embedded.Start(embedded.Config{
		StoreDir: tb.TempDir(),
		Port:     -1,
		Quiet:    quiet,
		Logger:   zerolog.New(zerolog.NewTestWriter(tb)),
	})
	require.NoError(tb, err)
	tb.Cleanup(srv.Shutdown)
	return srv
}

// JetStream starts a server (see [Server]) and connects to it.
func JetStream(tb testing.TB) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	srv := Server(tb)
	nc, js := Connect(tb, srv.ClientURL())
	return nc, js
}

// Connect opens a client connection closed when the test ends.
func Connect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	require.NoError(tb, err)
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(tb, err)
	return nc, js
}

// ForExample starts a server as [JetStream] does, for an Example function,
// which has no testing.TB: it panics if the server cannot start (the
// example fails with the panic), and stop closes the connection, shuts
// the server down and removes its store. Server logs are dropped.
func ForExample() (nc *nats.Conn, js jetstream.JetStream, stop func()) {
	dir, err := os.MkdirTemp("", "jetfleet-example-")
	if err != nil {
		panic(err)
	}
	srv, err := embedded.Start(embedded.Config{StoreDir: dir, Port: -1, Quiet: true})
	if err != nil {
		_ = os.RemoveAll(dir)
		panic(err)
	}
	stop = func() {
		if nc != nil {
			nc.Close()
		}
		srv.Shutdown()
		_ = os.RemoveAll(dir)
	}
	if nc, err = nats.Connect(srv.ClientURL()); err != nil {
		stop()
		panic(err)
	}
	if js, err = jetstream.New(nc); err != nil {
		stop()
		panic(err)
	}
	return nc, js, stop
}
