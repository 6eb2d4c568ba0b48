package fleet_test

import (
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// TestBuildLeavesExternalStepsOut: a step in a dataset's external_steps
// gets no worker for that dataset, and every other step still does.
func TestBuildLeavesExternalStepsOut(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Parse("p.yaml", []byte(`name: p
datasets:
  feedback:
    key: id
    schema: [{name: id, type: VARCHAR}]
    external_steps: [transform]
  orders:
    key: id
    schema: [{name: id, type: VARCHAR}]
`))
	require.NoError(t, err)
	nc, _ := embeddedtest.JetStream(t)
	fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)), Spec: spec, Steps: []string{"validate", "transform"}, DataDir: t.TempDir()})
	require.NoError(t, err)
	var names []string
	for _, m := range fl.Members {
		names = append(names, m.Name)
	}
	require.Equal(t, []string{"validate/feedback#1", "validate/orders#1", "transform/orders#1"}, names)
}
