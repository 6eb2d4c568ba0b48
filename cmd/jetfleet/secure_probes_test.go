package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSecureWorkerProbes: under the secure config a worker's /readyz,
// /status and /metrics answer from what its own user may read (its
// consumer's info), with no permission violation on the server.
func TestSecureWorkerProbes(t *testing.T) {
	t.Parallel()
	b := setupSecure(t)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := start(t, b.env("validate"), "worker", "--log-format", "json", "--http", addr, "validate")

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	var body string
	waitFor(t, 60*time.Second, "/readyz 200", func() bool {
		code, body = get("/readyz")
		return code == http.StatusOK
	})
	code, body = get("/status")
	require.Equal(t, http.StatusOK, code, body)
	var st struct {
		Steps []struct {
			Step, Dataset, Consumer string
			Workers                 []struct{ ID string }
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	require.Len(t, st.Steps, 1, body)
	require.Equal(t, "validate_orders", st.Steps[0].Consumer)
	require.Len(t, st.Steps[0].Workers, 1)
	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `jetfleet_consumer_pending{dataset="orders",step="validate"} 0`)
	require.Contains(t, body, "jetfleet_status_ok 1")

	for _, s := range []string{b.serverLog.String(), p.out.String()} {
		require.NotContains(t, strings.ToLower(s), "permissions violation", s)
	}
}
