package subjects_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

func TestEnsureIdempotentAndUpdates(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}), "second Ensure must be a no-op")
	for _, name := range []string{subjects.StreamIngest, subjects.StreamValid, subjects.StreamClean, subjects.StreamDLQ, subjects.StreamAlerts} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, jetstream.FileStorage, s.CachedInfo().Config.Storage)
		require.Positive(t, s.CachedInfo().Config.MaxAge, "limits retention with a max age")
	}
	// A compatible change (max age) is applied.
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{MaxAge: time.Hour}))
	s, err := js.Stream(ctx, subjects.StreamIngest)
	require.NoError(t, err)
	require.Equal(t, time.Hour, s.CachedInfo().Config.MaxAge)
}

func TestEnsureReportsConflict(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subjects.StreamValid, Subjects: []string{"other.>"}, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	err = subjects.Ensure(ctx, js, subjects.StreamOptions{})
	require.ErrorIs(t, err, subjects.ErrStreamConflict)
	require.Contains(t, err.Error(), "JF_VALID")
	s, err := js.Stream(ctx, subjects.StreamValid)
	require.NoError(t, err)
	require.Equal(t, []string{"other.>"}, s.CachedInfo().Config.Subjects, "a conflicting stream is never replaced")
}
