package supervisor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/supervisor"
)

// The screen shows a STREAM table only when streams are replicated, with
// each follower's state as a person reads it.
func TestRenderTextShowsStreamReplicas(t *testing.T) {
	t.Parallel()
	st := &supervisor.Status{Time: time.Now(), Headline: "healthy", Streams: []supervisor.StreamStatus{
		{Name: "JF_INGEST", Replicas: 3, Cluster: &supervisor.StreamCluster{Leader: "n2", Replicas: []supervisor.StreamPeer{
			{Name: "n1", Current: true}, {Name: "n3", Offline: true},
		}}},
		{Name: "JF_VALID", Replicas: 3, Cluster: &supervisor.StreamCluster{Leader: "n1", Replicas: []supervisor.StreamPeer{
			{Name: "n2", Lag: 7}, {Name: "n3", SeenAgoSec: 95},
		}}},
	}}
	var b strings.Builder
	require.NoError(t, supervisor.RenderText(&b, st, supervisor.TextOptions{}))
	out := b.String()
	require.Contains(t, out, "STREAM     REPLICAS  LEADER  FOLLOWERS")
	require.Contains(t, out, "JF_INGEST  3         n2      n1 (current), n3 (offline)")
	require.Contains(t, out, "JF_VALID   3         n1      n2 (behind 7), n3 (not seen for 1m35s)")

	single := &supervisor.Status{Time: time.Now(), Headline: "healthy", Streams: []supervisor.StreamStatus{{Name: "JF_INGEST", Replicas: 1}}}
	b.Reset()
	require.NoError(t, supervisor.RenderText(&b, single, supervisor.TextOptions{}))
	require.NotContains(t, b.String(), "STREAM", "a single server's screen stays as it was")
}
