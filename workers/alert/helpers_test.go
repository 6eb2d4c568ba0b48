package alert_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling JetStream state
	}
}

func parseSpec(t *testing.T, yaml string) *pipeline.Spec {
	t.Helper()
	spec, err := pipeline.Parse("test.yaml", []byte(yaml))
	require.NoError(t, err)
	return spec
}

// startWorker runs cfg's worker, logging to the test, until the test ends.
func startWorker(t *testing.T, cfg workers.Config) *workers.Worker {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	return workertest.StartWorker(t, cfg)
}

func startAlertStep(t *testing.T, nc *nats.Conn, js jetstream.JetStream, spec *pipeline.Spec, dataset string) *workers.Worker {
	t.Helper()
	return startWorker(t, workers.Config{
		Conn: nc, Step: subjects.StepAlert, Dataset: dataset,
		NewHandlerFunc: func() (workers.Handler, error) {
			return alert.NewStep(t.Context(), alert.StepConfig{JS: js, Spec: spec, Dataset: dataset, Logger: zerolog.New(zerolog.NewTestWriter(t))})
		},
	})
}

// alerts reads every alert stored on subject filter (jf.alert.> for all).
func alerts(t *testing.T, js jetstream.JetStream, filter string) []alert.Alert {
	t.Helper()
	ctx := t.Context()
	c, err := js.OrderedConsumer(ctx, subjects.StreamAlerts, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	var out []alert.Alert
	for n := info.NumPending; n > 0; n-- {
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		var a alert.Alert
		require.NoError(t, json.Unmarshal(m.Data(), &a))
		require.Equal(t, a.ID, m.Headers().Get(subjects.HeaderMsgID), "the alert's id is its message id")
		out = append(out, a)
	}
	return out
}

// consumerDone reports whether consumer on stream has nothing pending or in flight.
func consumerDone(t *testing.T, js jetstream.JetStream, stream, consumer string) bool {
	t.Helper()
	c, err := js.Consumer(t.Context(), stream, consumer)
	if err != nil {
		return false
	}
	info, err := c.Info(t.Context())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream, filter string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		return 0
	}
	info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
