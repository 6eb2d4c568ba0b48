package workers_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// discover sends a micro discovery request ($SRV.<verb>.<name>) and
// collects the replies of every instance until wait passes, as `nats
// micro ls` and `nats micro stats` do.
func discover(t *testing.T, nc *nats.Conn, verb, name string, wait time.Duration) []*nats.Msg {
	t.Helper()
	subject, err := micro.ControlSubject(map[string]micro.Verb{"PING": micro.PingVerb, "INFO": micro.InfoVerb, "STATS": micro.StatsVerb}[verb], name, "")
	require.NoError(t, err)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	require.NoError(t, err)
	defer func() { _ = sub.Unsubscribe() }()
	require.NoError(t, nc.PublishRequest(subject, inbox, nil))
	var out []*nats.Msg
	deadline := time.Now().Add(wait)
	for {
		m, err := sub.NextMsg(time.Until(deadline))
		if err != nil {
			return out
		}
		out = append(out, m)
	}
}

// TestWorkerIsMicroService: a worker serving control is the micro service
// jetfleet-<step>: listed by PING, described by INFO with its metadata and
// control endpoints, its STATS count control requests and carry its
// heartbeat counters; it is gone after deregistering.
func TestWorkerIsMicroService(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset)))
	cfg.Version = "v0.4.0-3-gdeadbee"
	w := run(t, cfg)
	stop, err := w.ServeControl()
	require.NoError(t, err)
	b.publish(t, subjects.Ingest(dataset), 5, "m-")

	pings := discover(t, b.nc, "PING", "jetfleet-validate", time.Second)
	require.Len(t, pings, 1)
	var ping micro.Ping
	require.NoError(t, json.Unmarshal(pings[0].Data, &ping))
	require.Equal(t, "jetfleet-validate", ping.Name)
	require.Equal(t, "0.4.0+3-gdeadbee", ping.Version)
	require.Equal(t, w.ID(), ping.Metadata["worker"])
	require.Equal(t, dataset, ping.Metadata["dataset"])
	require.Equal(t, "validate_orders", ping.Metadata["consumer"])
	require.NotEmpty(t, ping.Metadata["pid"])
	require.Equal(t, "v0.4.0-3-gdeadbee", ping.Metadata["version"])

	infos := discover(t, b.nc, "INFO", "jetfleet-validate", time.Second)
	require.Len(t, infos, 1)
	var info micro.Info
	require.NoError(t, json.Unmarshal(infos[0].Data, &info))
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
		all := discover(t, b.nc, "STATS", "jetfleet-validate", time.Second)
		if len(all) != 1 || json.Unmarshal(all[0].Data, &stats) != nil {
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
	deadline := time.Now().Add(30 * time.Second)
	for !checkStats() {
		require.True(t, time.Now().Before(deadline), "stats with 3 control requests and 5 acked: %+v", stats)
		time.Sleep(50 * time.Millisecond) // polling the worker's counters over NATS
	}

	stop()
	require.Empty(t, discover(t, b.nc, "PING", "jetfleet-validate", 300*time.Millisecond), "deregistered")
}
