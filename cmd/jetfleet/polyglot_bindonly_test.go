package main_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestPolyglotStepBindsOnly: with JETFLEET_BIND_ONLY the JavaScript step
// creates no consumer; it waits until jetfleet setup has made one, then runs.
func TestPolyglotStepBindsOnly(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs npm packages")
	}
	dir := installSentiment(t)
	pipelineFile, err := filepath.Abs(filepath.Join("..", "..", "examples", "feedback", "pipeline.yaml"))
	require.NoError(t, err)
	srv := embeddedtest.Server(t)
	env := []string{"NATS_URL=" + srv.ClientURL()}
	_, js := embeddedtest.Connect(t, srv.ClientURL())

	out, code := jf(t, env, "setup", "--pipeline", pipelineFile)
	require.Zero(t, code, out)
	require.NoError(t, js.DeleteConsumer(t.Context(), subjects.StreamValid, "transform_feedback"))

	node := startNode(t, dir, append(env, "JETFLEET_BIND_ONLY=true", "JF_HEARTBEAT_MS=200"))
	embeddedtest.WaitFor(t, 30*time.Second, "the JS step waits for its consumer", func() bool {
		return strings.Contains(node.out.String(), "waiting for JetStream") && strings.Contains(node.out.String(), "consumer not found")
	})
	_, err = js.Consumer(t.Context(), subjects.StreamValid, "transform_feedback")
	require.Error(t, err, "a bind-only step created its consumer")

	out, code = jf(t, env, "setup", "--pipeline", pipelineFile)
	require.Zero(t, code, out)
	require.Contains(t, out, "created   consumer     JF_VALID/transform_feedback")
	embeddedtest.WaitFor(t, 60*time.Second, "the JS step runs", func() bool { return strings.Contains(node.out.String(), "worker started") })
}
