package supervisor_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// ctl pause on a step stops its workers fetching, and status says so;
// resume lets the backlog through.
func TestControlPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	w := workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	unsub, err := w.ServeControl()
	require.NoError(t, err)
	t.Cleanup(unsub)

	request := func(subject, op string) subjects.ControlReply {
		body, err := json.Marshal(subjects.ControlRequest{Op: op})
		require.NoError(t, err)
		m, err := b.nc.Request(subject, body, embeddedtest.Timeout(5*time.Second))
		require.NoError(t, err)
		var r subjects.ControlReply
		require.NoError(t, json.Unmarshal(m.Data, &r))
		require.Empty(t, r.Error)
		return r
	}
	r := request(subjects.ControlStep("validate"), subjects.CtlPause)
	require.Equal(t, subjects.StatePaused, r.State)
	require.Equal(t, w.ID(), r.Worker)
	require.True(t, w.Paused())

	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"a":2}`)
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t)
		s := step(st, "validate", dataset)
		if s == nil || !s.Paused || s.Pending != 2 {
			return errors.New("not paused with 2 pending in status yet")
		}
		require.Equal(t, "paused", s.State)
		require.Contains(t, st.Notes[0], "validate/orders is paused")
		return nil
	})

	request(subjects.Control("validate", w.ID()), subjects.CtlResume)
	require.False(t, w.Paused())
	st, err := supervisor.WaitIdle(t.Context(), b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, uint64(0), step(st, "validate", dataset).Pending)
	require.Equal(t, uint64(2), b.streamMsgs(t, subjects.StreamValid, subjects.Valid(dataset)))

	r = request(subjects.Control("validate", w.ID()), subjects.CtlDrain)
	require.Equal(t, subjects.StatePaused, r.State)
	require.Zero(t, r.InFlight)
}
