package supervisor_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

// TestOwnScopeProbes: a worker process's /readyz waits for its workers to
// bind and asks for nothing but their consumers; its /status shows them.
func TestOwnScopeProbes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var mu sync.Mutex
	var beats []subjects.Beat
	set := func(bs ...subjects.Beat) {
		mu.Lock()
		defer mu.Unlock()
		beats = bs
	}
	h, err := supervisor.NewHandler(supervisor.HandlerConfig{JS: b.js, Logger: b.log, Own: &supervisor.OwnScope{BeatsFunc: func() []subjects.Beat {
		mu.Lock()
		defer mu.Unlock()
		return beats
	}}})
	require.NoError(t, err)
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body)
	}

	code, body := get("/readyz")
	require.Equal(t, http.StatusOK, code, "no step workers (ingest): connected is ready: %s", body)

	beat := subjects.Beat{Worker: "w1", Step: "validate", Dataset: dataset, Consumer: subjects.ConsumerName("validate", dataset), State: subjects.StateStarting}
	set(beat)
	code, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "worker w1 (validate/orders) is starting")

	beat.State = subjects.StateRunning
	set(beat)
	code, body = get("/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "consumer validate_orders on JF_INGEST")

	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{})
	require.NoError(t, err)
	_, err = b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)
	code, body = get("/readyz")
	require.Equal(t, http.StatusOK, code, body)
	code, body = get("/status")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `"consumer": "validate_orders"`)
	require.Contains(t, body, `"id": "w1"`)
	require.NotContains(t, body, "supervisor is down", "one process cannot tell")
}
