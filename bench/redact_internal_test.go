package bench

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	require.Equal(t, "nats://[REDACTED]@h:4222,tls://h2:4222", redactURL("nats://u:secret@h:4222,tls://h2:4222"))
	require.Equal(t, "[REDACTED]@h:4222", redactURL("tok@h:4222"))
	require.Equal(t, "nats://h:4222", redactURL("nats://h:4222"))
}
