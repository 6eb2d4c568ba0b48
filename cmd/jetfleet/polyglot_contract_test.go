package main_test

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestJSStepWorkerContract runs the worker contract suite on the feedback
// example's JavaScript transform step, one node process per subtest. The
// subtests that inject faults into the Go handler chain do not apply.
func TestJSStepWorkerContract(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs npm packages")
	}
	dir := installSentiment(t)
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		return workertest.Step{
			Config: workers.Config{Step: subjects.StepTransform, Dataset: "feedback"},
			StartFunc: func(t *testing.T, cfg workers.Config) func() {
				p := startNode(t, dir, []string{
					"NATS_URL=" + env.URL, "JF_DATASET=" + cfg.Dataset, "JF_WORKER_ID=" + cfg.ID,
					"JF_ACK_WAIT_MS=" + strconv.FormatInt(cfg.Consumer.AckWait.Milliseconds(), 10),
					"JF_MAX_DELIVER=" + strconv.Itoa(cfg.Consumer.MaxDeliver),
				})
				embeddedtest.WaitFor(t, 30*time.Second, "JS step started", func() bool { return strings.Contains(p.out.String(), "worker started") })
				return func() {
					t.Helper()
					require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
					select {
					case err := <-p.done:
						p.done <- err // for startNode's cleanup
						require.NoError(t, err, "the JS step's exit after SIGTERM")
					case <-time.After(20 * time.Second):
						require.FailNow(t, "the JS step did not drain within 20s")
					}
				}
			},
			ValidFunc: func(i int) []byte {
				return fmt.Appendf(nil, `{"feedback_id":"f-%d","customer_id":"c-1","channel":" Email ","ts":"2026-10-01T10:00:00+02:00","text":"Great service, thank you %d"}`, i, i)
			},
			Invalid: []byte(`{"feedback_id":"f-bad","customer_id":"c-1","channel":"app","ts":"2026-10-01T10:00:00Z"}`),
			Reason:  "text missing: nothing to score",
			// The JS step publishes without a key token (the rekey step
			// gives it one in a fleet).
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Clean("feedback")),
		}
	}, workertest.Features{})
}
