package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
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

// TestAggregateMemberRuns: the aggregate member of a fleet runs again after
// it stopped (as the supervisor tree restarts a member that failed), on
// the same data dir, and carries on where it was: a second run commits
// more records and the marts hold both runs'.
func TestAggregateMemberRuns(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	spec := examples.Shop()
	fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: zerolog.New(zerolog.NewTestWriter(t)), Spec: spec, Steps: []string{"aggregate"}, DataDir: t.TempDir(), MemoryLimit: "256MB"})
	require.NoError(t, err)
	var agg fleet.Member
	for _, m := range fl.Members {
		if strings.HasPrefix(m.Name, "aggregate/") {
			agg = m
		}
	}
	require.NotNil(t, agg.RunFunc)
	dataDir := fl.DataDir()
	publish := func(id string) uint64 {
		m := nats.NewMsg(subjects.CleanKey("orders", subjects.KeyToken(id)))
		m.Data = []byte(`{"order_id":"` + id + `","customer_id":"c-1","amount":10,"currency":"USD","amount_usd":10,"country":"US","ts":"2026-10-01T10:00:00Z"}`)
		m.Header.Set(subjects.HeaderMsgID, id)
		ack, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
		return ack.Sequence
	}
	for run, id := range []string{"r-1", "r-2"} {
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- agg.Run(runCtx) }()
		seq := publish(id)
		embeddedtest.WaitFor(t, time.Minute, fmt.Sprintf("run %d folds its record", run+1), func() bool {
			ms, err := marts.ReadManifests(dataDir)
			if err != nil || len(ms) != 3 {
				return false
			}
			for _, m := range ms {
				if m.LastSeq < seq {
					return false
				}
			}
			return true
		})
		cancel()
		require.NoError(t, <-done, "run %d", run+1)
	}
	p, err := marts.ReadProgress(dataDir)
	require.NoError(t, err)
	require.Len(t, p, 1)
	require.Equal(t, int64(2), p[0].Records)
}
