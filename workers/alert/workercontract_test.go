package alert_test

import (
	"fmt"
	"testing"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// contractSpec has a record rule that fires on every record the suite
// calls valid, with a cooldown per record: each fires once, and the
// cooldown state in KV is part of what a redelivery must not change.
const contractSpec = `
name: ticks
datasets:
  ticks:
    key: id
    schema:
      - {name: id, type: VARCHAR}
      - {name: sym, type: VARCHAR}
      - {name: price, type: DOUBLE}
      - {name: ts, type: TIMESTAMPTZ}
alerts:
  big:
    dataset: ticks
    when: price > 100
    key: id
    cooldown: 1m
    severity: warning
`

// TestWorkerContract runs the worker contract suite on the alert step's
// record rules: its effects are the alerts it publishes.
func TestWorkerContract(t *testing.T) {
	t.Parallel()
	spec := parseSpec(t, contractSpec)
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
				return fmt.Appendf(nil, `{"id":"t-%d","sym":"S","price":%d,"ts":"2026-10-01T09:00:%02dZ"}`, i, 101+i, i%60)
			},
			Invalid:     []byte(`not json`),
			Reason:      "record is not valid JSON",
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Alert("big")),
		}
	}, workertest.Features{})
}
