package main_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// microServices lists name -> metadata of every jetfleet service instance.
func microServices(t *testing.T, nc *nats.Conn) map[string][]map[string]string {
	t.Helper()
	out := map[string][]map[string]string{}
	for _, data := range embeddedtest.MicroDiscover(t, nc, micro.PingVerb, "", time.Second) {
		var p micro.Ping
		require.NoError(t, json.Unmarshal(data, &p))
		out[p.Name] = append(out[p.Name], p.Metadata)
	}
	return out
}

// TestFleetDiscoverableAsMicroServices: every member of `jetfleet dev`
// and a `jetfleet worker` process answer micro discovery with their step,
// worker id and stats; the supervisor answers status requests.
func TestFleetDiscoverableAsMicroServices(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	nc, _ := embeddedtest.Connect(t, dev.url)

	// A worker in its own process joins the same fleet.
	w := start(t, dev.env, "worker", "--log-format", "json", "--pipeline", passthrough, "validate")
	embeddedtest.WaitFor(t, 30*time.Second, "worker started", func() bool { return strings.Contains(w.out.String(), "worker started") })

	var services map[string][]map[string]string
	embeddedtest.WaitFor(t, 30*time.Second, "every member listed", func() bool {
		services = microServices(t, nc)
		return len(services["jetfleet-validate"]) == 2 && len(services["jetfleet-transform"]) == 1 &&
			len(services["jetfleet-aggregate"]) == subjects.DefaultPartitions && len(services["jetfleet-supervisor"]) == 1 // a worker per partition
	})
	var pids []string
	for _, md := range services["jetfleet-validate"] {
		require.Equal(t, "orders", md["dataset"])
		require.Equal(t, "validate_orders", md["consumer"])
		require.NotEmpty(t, md["worker"])
		pids = append(pids, md["pid"])
	}
	require.NotEqual(t, pids[0], pids[1], "one validate worker in dev, one in its own process")
	require.Contains(t, pids, fmt.Sprint(w.cmd.Process.Pid))

	file := t.TempDir() + "/orders.ndjson"
	writeOrders(t, file, 0, 100)
	out, code := jf(t, dev.env, "publish", "--file", file, "--id-field", "order_id", "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	out, code = jf(t, dev.env, "status", "--wait-idle", "60s")
	require.Equal(t, 0, code, out)

	// STATS: the two validate workers' acked counters add up to the input;
	// transform saw all of it.
	embeddedtest.WaitFor(t, 30*time.Second, "stats carry the counters", func() bool {
		acked := map[string]int64{}
		for _, name := range []string{"jetfleet-validate", "jetfleet-transform"} {
			for _, data := range embeddedtest.MicroDiscover(t, nc, micro.StatsVerb, name, time.Second) {
				var st micro.Stats
				require.NoError(t, json.Unmarshal(data, &st))
				i := slices.IndexFunc(st.Endpoints, func(e *micro.EndpointStats) bool { return e.Name == "control" })
				require.GreaterOrEqual(t, i, 0, "control endpoint in %s", data)
				var beat subjects.Beat
				require.NoError(t, json.Unmarshal(st.Endpoints[i].Data, &beat))
				require.Equal(t, st.Metadata["worker"], beat.Worker)
				acked[name] += beat.Counters.Acked
			}
		}
		return acked["jetfleet-validate"] == 100 && acked["jetfleet-transform"] == 100
	})

	// The supervisor's endpoint answers with the status document.
	m, err := nc.Request(subjects.SupStatus, nil, 10*time.Second)
	require.NoError(t, err)
	var st struct {
		Healthy bool `json:"healthy"`
		Steps   []struct {
			Step string `json:"step"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(m.Data, &st), string(m.Data))
	steps := make([]string, len(st.Steps))
	for i, s := range st.Steps {
		steps[i] = s.Step
	}
	require.ElementsMatch(t, []string{"validate", "transform", "aggregate", "rekey"}, steps, "the aggregate process runs rekey beside its partitions")
	var supStats micro.Stats
	embeddedtest.WaitFor(t, 30*time.Second, "supervisor stats", func() bool {
		sups := embeddedtest.MicroDiscover(t, nc, micro.StatsVerb, "jetfleet-supervisor", time.Second)
		return len(sups) == 1 && json.Unmarshal(sups[0], &supStats) == nil
	})
	require.Len(t, supStats.Endpoints, 1)
	require.Equal(t, subjects.SupStatus, supStats.Endpoints[0].Subject)
	require.Equal(t, 1, supStats.Endpoints[0].NumRequests)
	require.Contains(t, string(supStats.Endpoints[0].Data), `"heartbeats"`)

	// A stopped process deregisters.
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	err = <-w.done
	w.done <- err
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 10*time.Second, "stopped worker gone", func() bool { return len(microServices(t, nc)["jetfleet-validate"]) == 1 })
}
