package embeddedtest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"
)

// MicroDiscover sends a micro discovery request ($SRV.<verb>[.<name>])
// and returns the reply of every service instance that answers within
// wait, as `nats micro ls` and `nats micro stats` do: a discovery has no
// end marker, so it always takes wait.
func MicroDiscover(tb testing.TB, nc *nats.Conn, verb micro.Verb, name string, wait time.Duration) [][]byte {
	tb.Helper()
	subject, err := micro.ControlSubject(verb, name, "")
	require.NoError(tb, err)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	require.NoError(tb, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(tb, nc.PublishRequest(subject, inbox, nil))
	var out [][]byte
	deadline := time.Now().Add(wait)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return out
		}
		out = append(out, m.Data)
	}
}
