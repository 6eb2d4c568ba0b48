package main_test

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestJSMicroServiceMatchesGo runs the JavaScript step of the feedback
// example next to a Go worker of the same step and compares what each
// registers as a NATS micro service (docs/wire.md, Discovery): the same
// service name, the endpoints control (jf.ctl.<worker>) and control-step
// (jf.ctl.step.<step>) in no queue group, the metadata the Go worker
// gives (worker, step, dataset, consumer, host, pid, version), a semantic
// service version, and the heartbeat as stats data; a step-wide request
// reaches both.
func TestJSMicroServiceMatchesGo(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs npm packages")
	}
	dir := installSentiment(t)
	srv := embeddedtest.Server(t)
	nc, js := embeddedtest.Connect(t, srv.ClientURL())
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))

	const goWorker, jsWorker = "go-micro-test", "js-micro-test"
	w := workertest.StartWorker(t, workers.Config{
		Conn: nc, Step: subjects.StepTransform, Dataset: "feedback", ID: goWorker, Version: "v1.2.3-4-gabcdef",
		NewHandlerFunc:    func() (workers.Handler, error) { return workers.Passthrough(subjects.Clean("feedback")), nil },
		Logger:            zerolog.New(zerolog.NewTestWriter(t)),
		HeartbeatInterval: time.Second,
	})
	unserve, err := w.ServeControl()
	require.NoError(t, err)
	t.Cleanup(unserve)
	node := startNode(t, dir, []string{"NATS_URL=" + srv.ClientURL(), "JF_WORKER_ID=" + jsWorker, "JF_HEARTBEAT_MS=1000"})
	embeddedtest.WaitFor(t, 30*time.Second, "JS step started", func() bool { return strings.Contains(node.out.String(), "worker started") })

	infos := map[string]micro.Info{}
	embeddedtest.WaitFor(t, 30*time.Second, "both workers answer INFO", func() bool {
		clear(infos)
		for _, data := range embeddedtest.MicroDiscover(t, nc, micro.InfoVerb, subjects.ServiceName("transform"), time.Second) {
			var info micro.Info
			require.NoError(t, json.Unmarshal(data, &info), "%s", data)
			infos[info.Metadata["worker"]] = info
		}
		return len(infos) == 2
	})
	goInfo, jsInfo := infos[goWorker], infos[jsWorker]
	require.Equal(t, goInfo.Name, jsInfo.Name)
	require.Equal(t, micro.InfoResponseType, jsInfo.Type)
	require.Regexp(t, semVer, jsInfo.Version, "micro wants a semantic version")
	require.Equal(t, "1.2.3+4-gabcdef", goInfo.Version)

	endpoints := func(info micro.Info, worker string) []micro.EndpointInfo {
		out := slices.Clone(info.Endpoints)
		for i := range out {
			out[i].Subject = strings.Replace(out[i].Subject, worker, "<worker>", 1)
			out[i].Metadata = nil
		}
		slices.SortFunc(out, func(a, b micro.EndpointInfo) int { return strings.Compare(a.Name, b.Name) })
		return out
	}
	require.Equal(t, []micro.EndpointInfo{
		{Name: subjects.EndpointControl, Subject: subjects.Control("transform", "<worker>")},
		{Name: subjects.EndpointControlStep, Subject: subjects.ControlStep("transform")},
	}, endpoints(goInfo, goWorker), "the Go side of the contract")
	require.Equal(t, endpoints(goInfo, goWorker), endpoints(jsInfo, jsWorker), "the JS step registers what the Go worker does")

	keys := slices.Sorted(maps.Keys(goInfo.Metadata))
	for _, k := range keys {
		require.NotEmpty(t, jsInfo.Metadata[k], "metadata %s", k)
	}
	for _, k := range []string{"step", "dataset", "consumer", "host"} {
		require.Equal(t, goInfo.Metadata[k], jsInfo.Metadata[k], "metadata %s", k)
	}
	require.Equal(t, "javascript", jsInfo.Metadata["language"])

	// The stats carry the heartbeat, whose version is the metadata's.
	var stats micro.Stats
	embeddedtest.WaitFor(t, 10*time.Second, "stats of the JS step", func() bool {
		for _, data := range embeddedtest.MicroDiscover(t, nc, micro.StatsVerb, subjects.ServiceName("transform"), time.Second) {
			var s micro.Stats
			require.NoError(t, json.Unmarshal(data, &s))
			if s.Metadata["worker"] == jsWorker {
				stats = s
				return true
			}
		}
		return false
	})
	require.Equal(t, micro.StatsResponseType, stats.Type)
	require.Len(t, stats.Endpoints, 2)
	var beat subjects.Beat
	require.NoError(t, json.Unmarshal(stats.Endpoints[0].Data, &beat))
	require.Equal(t, jsWorker, beat.Worker)
	require.Equal(t, jsInfo.Metadata["version"], beat.Version)

	// A step-wide request reaches every worker: no queue group.
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	req, err := json.Marshal(subjects.ControlRequest{Op: subjects.CtlPing})
	require.NoError(t, err)
	require.NoError(t, nc.PublishRequest(subjects.ControlStep("transform"), inbox, req))
	replied := map[string]bool{}
	for len(replied) < 2 {
		m, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err, "replies so far: %v", replied)
		var r subjects.ControlReply
		require.NoError(t, json.Unmarshal(m.Data, &r))
		replied[r.Worker] = true
	}
	require.Equal(t, map[string]bool{goWorker: true, jsWorker: true}, replied)

	// A failed op is a service error, as on the Go side.
	resp, err := nc.Request(subjects.Control("transform", jsWorker), []byte(`{"op":"explode"}`), 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "400", resp.Header.Get(micro.ErrorCodeHeader))
	require.Contains(t, resp.Header.Get(micro.ErrorHeader), "unknown control op")
}

// semVer is the expression nats.go's micro validates versions with.
var semVer = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
