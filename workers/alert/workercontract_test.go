package alert_test

import (
	"fmt"
	"testing"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestWorkerContract runs the worker contract suite on the alert step's
// record rules: its effects are the alerts it publishes. Each valid record
// fires rule hot once: a price above 100, on a symbol of its own (the
// rule's cooldown key, whose state in KV a redelivery must not change).
func TestWorkerContract(t *testing.T) {
	t.Parallel()
	spec := parseSpec(t, ticksSpec)
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		return workertest.Step{
			Config: workers.Config{
				Step: subjects.StepAlert, Dataset: "ticks",
				NewHandlerFunc: func() (workers.Handler, error) {
					return alert.NewStep(t.Context(), alert.StepConfig{JS: env.JS, Spec: spec, Dataset: "ticks", Logger: env.Log})
				},
			},
			// The alert step reads the clean stage's partitions.
			Subject: subjects.CleanKey("ticks", subjects.KeyToken("t")),
			ValidFunc: func(i int) []byte {
				return fmt.Appendf(nil, `{"id":"t-%d","sym":"S%d","price":%d,"ts":"2026-10-01T09:00:00Z"}`, i, i, 101+i)
			},
			Invalid:     []byte(`not json`),
			Reason:      "record is not valid JSON",
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Alert("hot")),
		}
	}, workertest.Features{})
}
