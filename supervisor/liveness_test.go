package supervisor_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// A worker that stops beating without a goodbye turns stale after three
// missed beats and dead once past its TTL, in events and in status.
func TestLivenessStaleThenDead(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := b.subscribeEvents(t)
	b.startSupervisor(t, nil)

	const interval = 100 * time.Millisecond
	beat := subjects.Beat{
		Worker: "w-silent", Step: "validate", Dataset: dataset, Consumer: subjects.ConsumerName("validate", dataset),
		Host: "h1", PID: 42, Started: time.Now().UTC(), IntervalMS: interval.Milliseconds(), State: subjects.StateRunning,
		LastErr: "boom",
	}
	var last time.Time
	for range 3 {
		beat.Time = time.Now().UTC()
		data, err := json.Marshal(beat)
		require.NoError(t, err)
		require.NoError(t, b.nc.Publish(subjects.Heartbeat(beat.Step, beat.Worker), data))
		require.NoError(t, b.nc.Flush())
		last = time.Now()
	}
	isWorker := func(to string) func(supervisor.Event) bool {
		return func(e supervisor.Event) bool {
			return e.Kind == supervisor.EventWorker && e.Worker == "w-silent" && e.To == to
		}
	}
	ev.next(t, 2*time.Second, isWorker(supervisor.LivenessAlive))
	embeddedtest.CheckFor(t, 2*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t)
		s := step(st, "validate", dataset)
		if s == nil || len(s.Workers) != 1 {
			return errors.New("worker not in status yet")
		}
		require.Equal(t, "w-silent", s.Workers[0].ID)
		require.Equal(t, "boom", s.Workers[0].LastErr)
		require.Equal(t, "h1", s.Workers[0].Host)
		return nil
	})

	stale := ev.next(t, 3*time.Second, isWorker(supervisor.LivenessStale))
	staleAt := time.Now()
	require.GreaterOrEqual(t, staleAt.Sub(last), 3*interval, "stale before three beats were missed")
	require.Equal(t, supervisor.LivenessAlive, stale.From)
	st := b.snapshot(t)
	if s := step(st, "validate", dataset); s.Workers[0].Liveness != supervisor.LivenessDead {
		require.Equal(t, supervisor.LivenessStale, s.Workers[0].Liveness)
		require.False(t, st.Healthy)
		require.Contains(t, st.Headline, "stale")
	}

	ev.next(t, 3*time.Second, isWorker(supervisor.LivenessDead))
	require.GreaterOrEqual(t, time.Since(last), time.Second, "dead before its TTL")
	st = b.snapshot(t)
	s := step(st, "validate", dataset)
	require.Len(t, s.Workers, 1)
	require.Equal(t, supervisor.LivenessDead, s.Workers[0].Liveness)
	require.False(t, st.Healthy)
	require.Contains(t, fmt.Sprint(st.Problems), "died without saying goodbye")

	// The heartbeat key itself ages out (per-key TTL), so it disappears
	// even with no supervisor to delete it.
	kv, err := b.js.KeyValue(t.Context(), subjects.FleetBucket)
	require.NoError(t, err)
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		if _, err := kv.Get(t.Context(), subjects.KeyWorker("validate", "w-silent")); err == nil {
			return errors.New("heartbeat key still there")
		}
		return nil
	})
}

// A real worker is alive while it runs and stopped after its goodbye beat.
func TestLivenessGoodbye(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ev := b.subscribeEvents(t)
	b.startSupervisor(t, nil)
	w := workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))

	ev.next(t, 3*time.Second, func(e supervisor.Event) bool { return e.Worker == w.ID() && e.To == supervisor.LivenessAlive })
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		s := step(b.snapshot(t), "validate", dataset)
		if s == nil || len(s.Workers) != 1 || s.Workers[0].State != subjects.StateRunning {
			return errors.New("running worker not in status")
		}
		require.Equal(t, supervisor.LivenessAlive, s.Workers[0].Liveness)
		require.Positive(t, s.Workers[0].UptimeSec+1)
		return nil
	})
	require.NoError(t, w.Stop(t.Context()))
	ev.next(t, 3*time.Second, func(e supervisor.Event) bool { return e.Worker == w.ID() && e.To == supervisor.LivenessStopped })
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t)
		s := step(st, "validate", dataset)
		if len(s.Workers) != 1 || s.Workers[0].Liveness != supervisor.LivenessStopped {
			return fmt.Errorf("workers %+v", s.Workers)
		}
		require.Equal(t, "no_workers", s.State)
		return nil
	})
}
