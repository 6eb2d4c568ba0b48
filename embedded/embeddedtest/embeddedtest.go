// Package embeddedtest gives tests a real JetStream server in a temp dir.
// Test code only: production packages never import it.
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
