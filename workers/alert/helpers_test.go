package alert_test

import (
	"encoding/json"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

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
	var out []alert.Alert
	for _, m := range embeddedtest.ReadStream(t, js, subjects.StreamAlerts, filter) {
		var a alert.Alert
		require.NoError(t, json.Unmarshal(m.Data, &a))
		require.Equal(t, a.ID, m.Header.Get(subjects.HeaderMsgID), "the alert's id is its message id")
		out = append(out, a)
	}
	return out
}
