package main_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestCtlResumeRepliesTheStateItProduced: the reply to resume says
// running, through jetfleet ctl and through a bare request as the nats
// CLI sends it, not the paused state the worker was leaving.
func TestCtlResumeRepliesTheStateItProduced(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	waitStarted(t, dev)

	out, code := jf(t, dev.env, "ctl", "pause", "validate")
	require.Zero(t, code, out)
	require.Regexp(t, `\s+validate\s+orders\s+paused\s+0`, out)
	out, code = jf(t, dev.env, "ctl", "resume", "validate")
	require.Zero(t, code, out)
	require.Regexp(t, `\s+validate\s+orders\s+running\s+0`, out)
	require.NotContains(t, out, "paused")

	nc, _ := embeddedtest.Connect(t, dev.url)
	for _, tc := range []struct{ op, state string }{{"pause", subjects.StatePaused}, {"resume", subjects.StateRunning}} {
		m, err := nc.Request(subjects.ControlStep("validate"), []byte(tc.op), 5*time.Second) // nats req jf.ctl.step.validate resume
		require.NoError(t, err)
		var r subjects.ControlReply
		require.NoError(t, json.Unmarshal(m.Data, &r), "%s", m.Data)
		require.Equal(t, tc.state, r.State, "%s replied %s", tc.op, m.Data)
	}
}

// TestCtlIgnoresForgedReplies: a client that answers on a step's control
// subject without being one of its workers (no beat on the step's
// heartbeat subject) does not get its row printed, and ctl says so.
func TestCtlIgnoresForgedReplies(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	waitStarted(t, dev)
	nc, _ := embeddedtest.Connect(t, dev.url)
	forged, _ := json.Marshal(subjects.ControlReply{Worker: "FORGED-by-validate", Step: "transform", Dataset: "orders", Op: "resume", State: "running"})
	sub, err := nc.Subscribe(subjects.ControlStep("transform"), func(m *nats.Msg) { _ = m.Respond(forged) })
	require.NoError(t, err)
	require.NoError(t, nc.Flush())

	out, code := jf(t, dev.env, "ctl", "resume", "transform")
	require.Equal(t, 1, code, out)
	require.Regexp(t, `\s+transform\s+orders\s+running\s+0`, out, "the real worker's answer is shown")
	require.Contains(t, out, `ignored a reply on jf.ctl.step.transform that claims worker "FORGED-by-validate" of step "transform": no heartbeat from it on jf.hb.transform.FORGED-by-validate`)
	require.NotRegexp(t, `(?m)^FORGED`, out, "no row for the forger")

	require.NoError(t, sub.Unsubscribe())
	out, code = jf(t, dev.env, "ctl", "resume", "transform")
	require.Zero(t, code, out)
	require.NotContains(t, out, "FORGED")
}

// TestCtlOneWorkerBySubjectUnderItsStep: a worker id is looked up and
// addressed on jf.ctl.step.<step>.<worker>.
func TestCtlOneWorkerBySubjectUnderItsStep(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	waitStarted(t, dev)
	out, code := jf(t, dev.env, "ctl", "pause", "transform")
	require.Zero(t, code, out)
	m := regexpWorker.FindStringSubmatch(out)
	require.NotNil(t, m, out)
	id := m[1]

	nc, _ := embeddedtest.Connect(t, dev.url)
	reply, err := nc.Request(subjects.Control("transform", id), []byte("ping"), 5*time.Second)
	require.NoError(t, err)
	var r subjects.ControlReply
	require.NoError(t, json.Unmarshal(reply.Data, &r))
	require.Equal(t, id, r.Worker)

	out, code = jf(t, dev.env, "ctl", "resume", id)
	require.Zero(t, code, out)
	require.Regexp(t, id+`\s+transform\s+orders\s+running`, out)
}

var regexpWorker = regexp.MustCompile(`(?m)^(\S+)\s+transform\s+orders\s+paused`)

// waitStarted waits until dev's workers have bound their consumers: dev
// says it is ready once every worker fetches (a starting worker answers
// control requests with state starting).
func waitStarted(t *testing.T, dev *devBundle) {
	t.Helper()
	embeddedtest.WaitFor(t, 30*time.Second, "jetfleet dev ready", func() bool {
		return strings.Contains(dev.proc.out.String(), `"message":"jetfleet dev ready"`)
	})
}
