package workers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWorkerSurvivesServerRestart: the server goes away under a running
// worker and comes back on the same address and store. The worker logs
// the loss and the return, reports the reconnect in its heartbeat, and
// handles what is published afterwards, with no restart of its own.
func TestWorkerSurvivesServerRestart(t *testing.T) {
	t.Parallel()
	store, port := t.TempDir(), embeddedtest.FreePort(t)
	start := func() *embedded.Server {
		srv, err := embedded.Start(embedded.Config{StoreDir: store, Port: port, Quiet: true})
		require.NoError(t, err)
		t.Cleanup(srv.Shutdown)
		return srv
	}
	srv := start()
	logs := &lockedBuffer{}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.InfoLevel)
	opts := append(workers.ReconnectOptions(log), nats.ReconnectWait(100*time.Millisecond))
	nc, err := nats.Connect(srv.ClientURL(), opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))

	b := &testBundle{nc: nc, js: js}
	cfg := b.fastConfig(t, subjects.StepValidate, workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	}))
	cfg.Logger = log
	cfg.PullHeartbeat = 500 * time.Millisecond
	w := workertest.StartWorker(t, cfg)
	require.Equal(t, uint64(0), w.Snapshot().Conn.Reconnects)
	require.Equal(t, "CONNECTED", w.Snapshot().Conn.Status)
	beats, err := nc.SubscribeSync(subjects.Heartbeat(subjects.StepValidate.Name, w.ID()))
	require.NoError(t, err)

	b.publish(t, subjects.Ingest(dataset), 5, "before-")
	embeddedtest.WaitStream(t, js, subjects.StreamValid, 5, 20*time.Second)

	srv.Shutdown()
	embeddedtest.WaitFor(t, 10*time.Second, "the worker to see the server gone", func() bool { return w.Snapshot().Conn.Status != "CONNECTED" })
	start()
	embeddedtest.WaitFor(t, 20*time.Second, "the worker to reconnect", func() bool {
		return w.Snapshot().Conn.Reconnects >= 1 && w.Snapshot().Conn.Status == "CONNECTED"
	})

	b.publish(t, subjects.Ingest(dataset), 5, "after-")
	embeddedtest.WaitStream(t, js, subjects.StreamValid, 10, 20*time.Second)

	out := logs.String()
	require.Contains(t, out, "disconnected from NATS; reconnecting")
	require.Contains(t, out, "reconnected to NATS")
	require.Contains(t, out, "lost NATS connection; the client reconnects on its own")
	require.Contains(t, out, "NATS connection back")
	// A heartbeat after the reconnect carries it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := beats.NextMsg(time.Until(deadline))
		require.NoError(t, err, "no heartbeat with the reconnect")
		var hb subjects.Beat
		require.NoError(t, json.Unmarshal(m.Data, &hb))
		// The client counts the reconnect before its handler notes the
		// time: a beat between the two has the count alone.
		if hb.Conn != nil && hb.Conn.Reconnects >= 1 && !hb.Conn.LastReconnect.IsZero() {
			require.Equal(t, "127.0.0.1:"+strconv.Itoa(port), hb.Conn.URL[len("nats://"):])
			break
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                      "nats://127.0.0.1:4222",
		"nats://u:secret@h1:4222,nats://tok@h2:4222": "nats://[REDACTED]@h1:4222,nats://[REDACTED]@h2:4222",
		"u:p@h:4222":                           "[REDACTED]@h:4222",
		"nats://u:secret@h:4222,tls://h2:4222": "nats://[REDACTED]@h:4222,tls://h2:4222",
		"tok@h:4222":                           "[REDACTED]@h:4222",
		"nats://h:4222":                        "nats://h:4222",
	} {
		require.Equal(t, want, workers.RedactURL(in))
	}
}

// TestOutputRepublishedWhileStreamAway: outputs the server does not take
// (here: their stream is gone for a moment, as a stream is between
// leaders in an election) are published again with the same ids instead
// of nak'ing the input, so no delivery is used up and nothing is
// dead-lettered.
func TestOutputRepublishedWhileStreamAway(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := t.Context()
	cfg := b.fastConfig(t, subjects.StepValidate, workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	}))
	cfg.Consumer.MaxDeliver = 1 // a single nak would dead-letter: only republishing saves the records
	cfg.RepublishFor = 30 * time.Second
	require.NoError(t, b.js.DeleteStream(ctx, subjects.StreamValid))
	w := workertest.StartWorker(t, cfg)
	require.NoError(t, b.js.DeleteStream(ctx, subjects.StreamValid)) // the worker's start re-created it
	b.publish(t, subjects.Ingest(dataset), 5, "r-")
	embeddedtest.WaitFor(t, 20*time.Second, "an output republished", func() bool { return w.Snapshot().Counters.Republished > 0 })
	require.NoError(t, subjects.Ensure(ctx, b.js, subjects.StreamOptions{}))
	embeddedtest.WaitStream(t, b.js, subjects.StreamValid, 5, 20*time.Second)
	embeddedtest.WaitFor(t, 20*time.Second, "5 inputs acked", func() bool { return w.Snapshot().Counters.Acked == 5 })
	c := w.Snapshot().Counters
	require.Zero(t, c.DeadLettered)
	require.Zero(t, c.Retried, "no nak: the input kept its delivery")
	require.Zero(t, c.Redelivered)
	require.Zero(t, embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ))
}
