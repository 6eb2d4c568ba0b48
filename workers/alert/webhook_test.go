package alert_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
)

// receiver is a webhook endpoint that answers each POST with the next
// status of a script (the last one repeats) and records what it got.
type receiver struct {
	mu     sync.Mutex
	script []int
	keys   []string
	bodies []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T, script ...int) *receiver {
	t.Helper()
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.keys)
		r.keys = append(r.keys, req.Header.Get(alert.HeaderIdempotencyKey))
		r.bodies = append(r.bodies, string(body))
		code := r.script[min(n, len(r.script)-1)]
		r.mu.Unlock()
		if got := req.Header.Get("X-Token"); got != "secret" { // t.Errorf: require would stop the server's goroutine, not the test
			t.Errorf("X-Token %q, want secret", got)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) posts() ([]string, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.keys...), append([]string(nil), r.bodies...)
}

func startWebhook(t *testing.T, nc *nats.Conn, target string, url string, maxDeliver int) {
	t.Helper()
	h, err := alert.NewWebhook(alert.WebhookConfig{
		Target: &pipeline.Webhook{Name: target, URL: url, Headers: map[string]string{"X-Token": "${JF_TEST_TOKEN}"}, Timeout: 5 * time.Second},
		Logger: zerolog.New(zerolog.NewTestWriter(t)),
	})
	require.NoError(t, err)
	startWorker(t, workers.Config{
		Conn: nc, Step: subjects.StepWebhook, Dataset: target, FilterSubjects: []string{subjects.Alert("hot")},
		NewHandlerFunc:  func() (workers.Handler, error) { return h, nil },
		RetryBackoffMin: 20 * time.Millisecond, RetryBackoffMax: 100 * time.Millisecond,
		Consumer: subjects.ConsumerOptions{MaxDeliver: maxDeliver},
	})
}

func publishAlert(t *testing.T, js jetstream.JetStream, id string) []byte {
	t.Helper()
	data, err := json.Marshal(alert.Alert{ID: id, Rule: "hot", Kind: "record", Severity: "warning", Dataset: "ticks", Message: "hot", Time: time.Now().UTC()})
	require.NoError(t, err)
	_, err = js.Publish(t.Context(), subjects.Alert("hot"), data, jetstream.WithMsgID(id))
	require.NoError(t, err)
	return data
}

// TestWebhookFailingTwiceReceivesAlertOnce: a target that answers 503
// twice and then 200 gets the alert three times with one Idempotency-Key,
// accepts it once, and is not called again.
func TestWebhookFailingTwiceReceivesAlertOnce(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	rcv := newReceiver(t, 503, 503, 200)
	startWebhook(t, nc, "ops", rcv.srv.URL, 5)
	body := publishAlert(t, js, "a-1")
	embeddedtest.WaitFor(t, 60*time.Second, "alert delivered and acked", func() bool {
		keys, _ := rcv.posts()
		return len(keys) >= 3 && embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamAlerts, "webhook_ops") == nil
	})
	// A second alert proves the consumer moved on: it is delivered at once.
	publishAlert(t, js, "a-2")
	embeddedtest.WaitFor(t, 60*time.Second, "second alert delivered", func() bool {
		keys, _ := rcv.posts()
		return len(keys) >= 4 && embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamAlerts, "webhook_ops") == nil
	})
	keys, bodies := rcv.posts()
	require.Equal(t, []string{"a-1", "a-1", "a-1", "a-2"}, keys, "retries carry the alert's id; the accepted alert is not sent again")
	require.JSONEq(t, string(body), bodies[2])
	require.Zero(t, embeddedtest.SubjectMsgs(t, js, subjects.StreamDLQ, subjects.AllDeadLetters))
}

// TestWebhookUndeliverableIsDeadLettered: a 4xx answer is permanent, and
// a target that keeps failing is given up on after MaxDeliver attempts;
// both alerts end in the dead-letter stream with the reason.
func TestWebhookUndeliverableIsDeadLettered(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	rejecting := newReceiver(t, 400)
	down := newReceiver(t, 500)
	startWebhook(t, nc, "rejecting", rejecting.srv.URL, 3)
	startWebhook(t, nc, "down", down.srv.URL, 3)
	publishAlert(t, js, "a-1")
	embeddedtest.WaitFor(t, 60*time.Second, "two dead letters", func() bool {
		return embeddedtest.SubjectMsgs(t, js, subjects.StreamDLQ, subjects.AllDeadLetters) == 2
	})
	s, err := js.Stream(t.Context(), subjects.StreamDLQ)
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(t.Context(), subjects.DeadLetter(subjects.StepWebhook.Name, "rejecting"))
	require.NoError(t, err)
	require.Contains(t, m.Header.Get(subjects.HeaderReason), "webhook answered 400")
	require.Equal(t, subjects.Alert("hot"), m.Header.Get(subjects.HeaderOrigSubject))
	m, err = s.GetLastMsgForSubject(t.Context(), subjects.DeadLetter(subjects.StepWebhook.Name, "down"))
	require.NoError(t, err)
	require.Contains(t, m.Header.Get(subjects.HeaderReason), "gave up after 3 deliveries: webhook answered 500")
	keys, _ := rejecting.posts()
	require.Len(t, keys, 1, "a 400 is not retried")
	keys, _ = down.posts()
	require.Len(t, keys, 3)
}

func TestWebhookBadURLAfterExpansion(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"${JF_TEST_UNSET_URL}", "ftp://x/${JF_TEST_TOKEN}", "http://[::1"} {
		_, err := alert.NewWebhook(alert.WebhookConfig{Target: &pipeline.Webhook{Name: "w", URL: u}})
		require.ErrorIs(t, err, workers.ErrInvalidConfig, u)
		require.NotContains(t, err.Error(), "secret", "a secret from the environment is not echoed")
	}
}
