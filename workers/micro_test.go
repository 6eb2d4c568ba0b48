package workers_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestWorkerIsMicroService: a worker serving control is the micro service
// jetfleet-<step>: listed by PING, described by INFO with its metadata and
// control endpoints, its STATS count control requests and carry its
// heartbeat counters; it is gone after deregistering.
func TestWorkerIsMicroService(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset)))
	cfg.Version = "v0.4.0-3-gdeadbee"
	w := workertest.StartWorker(t, cfg)
	stop, err := w.ServeControl()
	require.NoError(t, err)
	b.publish(t, subjects.Ingest(dataset), 5, "m-")

	pings := embeddedtest.MicroDiscover(t, b.nc, micro.PingVerb, "jetfleet-validate", time.Second)
	require.Len(t, pings, 1)
	var ping micro.Ping
	require.NoError(t, json.Unmarshal(pings[0], &ping))
	require.Equal(t, "jetfleet-validate", ping.Name)
	require.Equal(t, "0.4.0+3-gdeadbee", ping.Version)
	require.Equal(t, w.ID(), ping.Metadata["worker"])
	require.Equal(t, dataset, ping.Metadata["dataset"])
	require.Equal(t, "validate_orders", ping.Metadata["consumer"])
	require.NotEmpty(t, ping.Metadata["pid"])
	require.Equal(t, "v0.4.0-3-gdeadbee", ping.Metadata["version"])

	infos := embeddedtest.MicroDiscover(t, b.nc, micro.InfoVerb, "jetfleet-validate", time.Second)
	require.Len(t, infos, 1)
	var info micro.Info
	require.NoError(t, json.Unmarshal(infos[0], &info))
	subjectsOf := map[string]string{}
	for _, e := range info.Endpoints {
		subjectsOf[e.Name] = e.Subject
		require.Empty(t, e.QueueGroup, "a step-wide request must reach every worker")
	}
	require.Equal(t, map[string]string{"control": subjects.Control("validate", w.ID()), "control-step": subjects.ControlStep("validate")}, subjectsOf)

	// Real traffic: ctl requests, one of them failing.
	for _, op := range []string{subjects.CtlPing, subjects.CtlPing, "explode"} {
		body, _ := json.Marshal(subjects.ControlRequest{Op: op})
		m, err := b.nc.Request(subjects.Control("validate", w.ID()), body, 5*time.Second)
		require.NoError(t, err)
		var r subjects.ControlReply
		require.NoError(t, json.Unmarshal(m.Data, &r))
		require.Equal(t, w.ID(), r.Worker)
		if op == "explode" {
			require.Contains(t, r.Error, "unknown control op")
			require.Equal(t, "400", m.Header.Get(micro.ErrorCodeHeader))
		}
	}

	var stats micro.Stats
	checkStats := func() bool {
		all := embeddedtest.MicroDiscover(t, b.nc, micro.StatsVerb, "jetfleet-validate", time.Second)
		if len(all) != 1 || json.Unmarshal(all[0], &stats) != nil {
			return false
		}
		var beat subjects.Beat
		for _, e := range stats.Endpoints {
			if e.Name == "control" && (e.NumRequests != 3 || e.NumErrors != 1) {
				return false
			}
			if json.Unmarshal(e.Data, &beat) != nil || beat.Counters.Acked != 5 {
				return false
			}
		}
		return len(stats.Endpoints) == 2
	}
	embeddedtest.CheckFor(t, 30*time.Second, 50*time.Millisecond, func() error {
		if checkStats() {
			return nil
		}
		return fmt.Errorf("stats with 3 control requests and 5 acked: %+v", stats)
	})

	stop()
	require.Empty(t, embeddedtest.MicroDiscover(t, b.nc, micro.PingVerb, "jetfleet-validate", 300*time.Millisecond), "deregistered")
}
