package subjects_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

func TestBindOnlyCreatesNothing(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	o := subjects.StreamOptions{BindOnly: true}
	err := subjects.Ensure(t.Context(), js, o)
	require.ErrorIs(t, err, subjects.ErrNotSetUp)
	require.Contains(t, err.Error(), "stream JF_INGEST does not exist")
	_, err = subjects.EnsureKV(t.Context(), js, subjects.FleetKV(o), o)
	require.ErrorIs(t, err, subjects.ErrNotSetUp)
	_, err = subjects.EnsureAdvisories(t.Context(), js, o)
	require.ErrorIs(t, err, subjects.ErrNotSetUp)
	names := js.StreamNames(t.Context())
	var n int
	for range names.Name() {
		n++
	}
	require.Zero(t, n, "bind-only made a stream")
}

func TestBindConsumerRefusesWhatBreaksTheContract(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	changes, err := subjects.EnsureStreams(t.Context(), js, subjects.StreamOptions{})
	require.NoError(t, err)
	require.Equal(t, subjects.ActionCreated, changes[0].Action)
	want, err := subjects.Consumer(subjects.StepValidate, "orders", subjects.ConsumerOptions{})
	require.NoError(t, err)

	_, err = subjects.BindConsumer(t.Context(), js, subjects.StreamIngest, want)
	require.ErrorIs(t, err, subjects.ErrNotSetUp)

	bad := want
	bad.FilterSubject, bad.MaxDeliver = subjects.Ingest("other"), -1
	_, err = js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, bad)
	require.NoError(t, err)
	_, err = subjects.BindConsumer(t.Context(), js, subjects.StreamIngest, want)
	require.ErrorIs(t, err, subjects.ErrConsumerConflict)
	require.Contains(t, err.Error(), "filter subjects [jf.ingest.other], want [jf.ingest.orders]; unlimited deliveries")

	c, err := subjects.EnsureConsumer(t.Context(), js, subjects.ConsumerDef{Stream: subjects.StreamIngest, Config: want})
	require.NoError(t, err)
	require.Equal(t, subjects.ActionUpdated, c.Action)
	c, err = subjects.EnsureConsumer(t.Context(), js, subjects.ConsumerDef{Stream: subjects.StreamIngest, Config: want})
	require.NoError(t, err)
	require.Equal(t, subjects.ActionUnchanged, c.Action)
	_, err = subjects.BindConsumer(t.Context(), js, subjects.StreamIngest, want)
	require.NoError(t, err)
}

// TestEnsureRefusesCountLimits: a stage stream that keeps only so many
// messages drops records; Ensure names it instead of running on it.
func TestEnsureRefusesCountLimits(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	cfg := subjects.Streams(subjects.StreamOptions{})[4]
	require.Equal(t, subjects.StreamAlerts, cfg.Name)
	cfg.MaxMsgs = 1
	_, err := js.CreateStream(t.Context(), cfg)
	require.NoError(t, err)
	err = subjects.Ensure(t.Context(), js, subjects.StreamOptions{})
	require.ErrorIs(t, err, subjects.ErrStreamConflict)
	require.Contains(t, err.Error(), "stream JF_ALERTS: max_msgs 1, want unlimited")
}
