package supervisor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

// A file uploaded to the landing bucket and not yet ingested keeps the
// fleet busy: --wait-idle must not say idle while it waits. Processed
// objects (done/, failed/) do not count.
func TestWaitIdleWaitsForLandingObjects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()

	st, err := supervisor.Snapshot(ctx, b.js)
	require.NoError(t, err)
	require.Nil(t, st.Landing, "no bucket, nothing to report")

	obs, err := b.js.CreateObjectStore(ctx, subjects.LandingBucketConfig(1))
	require.NoError(t, err)
	for _, name := range []string{subjects.LandingDone + "orders/a.ndjson", subjects.LandingFailed + "orders/b.ndjson"} {
		_, err := obs.PutString(ctx, name, "{}\n")
		require.NoError(t, err)
	}
	st, err = supervisor.Snapshot(ctx, b.js)
	require.NoError(t, err)
	require.NotNil(t, st.Landing)
	require.Zero(t, st.Landing.Waiting)
	require.Empty(t, st.Busy())

	_, err = obs.PutString(ctx, "orders/c.ndjson", "{}\n")
	require.NoError(t, err)
	st, err = supervisor.Snapshot(ctx, b.js)
	require.NoError(t, err)
	require.Equal(t, 1, st.Landing.Waiting)
	require.Equal(t, "landing: 1 object(s) waiting to be ingested (orders/c.ndjson)", st.Busy())
	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, st, supervisor.TextOptions{}))
	require.Contains(t, text.String(), "1 object(s) waiting to be ingested: orders/c.ndjson")

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = supervisor.WaitIdle(short, b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.ErrorIs(t, err, supervisor.ErrNotIdle)
	require.Contains(t, err.Error(), "orders/c.ndjson")

	// The ingest step moves an object to done/ once its records are in.
	require.NoError(t, obs.Delete(ctx, "orders/c.ndjson"))
	_, err = obs.PutString(ctx, subjects.LandingDone+"orders/c.ndjson", "{}\n")
	require.NoError(t, err)
	_, err = supervisor.WaitIdle(ctx, b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
}
