package fleet_test

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// TestBuildAlertStep: the alert step exists only in a pipeline with
// rules; it runs a worker per dataset with record rules and a deliverer
// per webhook target some rule names.
func TestBuildAlertStep(t *testing.T) {
	t.Parallel()
	nc, _ := embeddedtest.JetStream(t)
	build := func(spec *pipeline.Spec, steps ...string) (*fleet.Fleet, error) {
		return fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)), Spec: spec, Steps: steps, DataDir: t.TempDir()})
	}
	plain, err := pipeline.Parse("p.yaml", []byte("name: p\ndatasets:\n  d: {key: id, schema: [{name: id, type: VARCHAR}]}\n"))
	require.NoError(t, err)
	require.NotContains(t, fleet.StepNames(plain), "alert")
	_, err = build(plain, "alert")
	require.ErrorIs(t, err, fleet.ErrInvalidConfig)

	spec, err := pipeline.Parse("p.yaml", []byte(`name: p
datasets:
  d: {key: id, schema: [{name: id, type: VARCHAR}, {name: n, type: DOUBLE}]}
  e: {key: id, schema: [{name: id, type: VARCHAR}]}
marts:
  m: {dataset: e, sql: SELECT count(*) AS c FROM e}
webhooks:
  ops: http://127.0.0.1:9/ops
  unused: http://127.0.0.1:9/unused
alerts:
  big: {dataset: d, when: n > 1, webhooks: [ops, "http://127.0.0.1:9/x"]}
  many: {mart: m, sql: SELECT * FROM m WHERE c > 10, webhooks: [ops]}
`))
	require.NoError(t, err)
	require.Contains(t, fleet.StepNames(spec), "alert")
	fl, err := build(spec, "alert")
	require.NoError(t, err)
	var names []string
	for _, m := range fl.Members {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"alert/d#1", "webhook/ops#1", "webhook/big_2#1"}, names, "no record rules on e, no rule names unused")
	require.NoError(t, fleet.CheckAlerts(spec))
}
