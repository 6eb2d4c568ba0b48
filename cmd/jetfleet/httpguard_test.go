package main_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

const guardToken = "test-token-7c1f0d9e5b2a4c68"

var (
	tokenHeader      = map[string]string{"Authorization": "Bearer " + guardToken}
	wrongTokenHeader = map[string]string{"Authorization": "Bearer " + guardToken + "-not"}
)

// headersWith returns h plus more headers.
func headersWith(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

type guardCase struct {
	name   string
	path   string
	header map[string]string
	code   int
	body   string // in the body
}

// checkGuard sends each case to base and checks the answer; no answer
// carries a CORS header.
func checkGuard(t *testing.T, base string, cases []guardCase) {
	t.Helper()
	for _, tc := range cases {
		code, h, body := httpDo(t, http.MethodGet, base+tc.path, tc.header)
		require.Equal(t, tc.code, code, "%s: %s", tc.name, body)
		require.Contains(t, body, tc.body, tc.name)
		for k := range h {
			require.False(t, strings.HasPrefix(k, "Access-Control-"), "%s: CORS header %s", tc.name, k)
		}
		if code == http.StatusUnauthorized {
			require.Equal(t, `Bearer realm="jetfleet"`, h.Get("WWW-Authenticate"), tc.name)
		}
	}
}

func tokenFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "http-token")
	require.NoError(t, os.WriteFile(f, []byte(guardToken+"\n"), 0o600))
	return f
}

// TestHTTPGuardQueryServer: `jetfleet query --http` with a token answers
// only requests addressed to it, from no foreign origin, with the token;
// at most --max-queries run at a time, the rest get 429 with Retry-After.
func TestHTTPGuardQueryServer(t *testing.T) {
	t.Parallel()
	dataDir := smokeDataDir(t)
	addr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
	p := start(t, []string{"JETFLEET_HTTP_ALLOW_HOST=jetfleet.example,metrics.example:9443"},
		"query", "--http", addr, "--data-dir", dataDir, "--http-token-file", tokenFile(t), "--max-queries", "1", "--log-format", "json")
	embeddedtest.WaitFor(t, 30*time.Second, "query --http serving", func() bool { return strings.Contains(p.out.String(), "serving queries") })
	base := "http://" + addr
	q := "/query?format=csv&q=" + url.QueryEscape("SELECT count(*) AS n FROM daily_sales")

	checkGuard(t, base, []guardCase{
		{"token", q, tokenHeader, 200, "n\n3\n"},
		{"localhost", q, headersWith(tokenHeader, "Host", "localhost:8089"), 200, "n\n3\n"},
		{"allowed name", q, headersWith(tokenHeader, "Host", "jetfleet.example"), 200, "n\n3\n"},
		{"allowed name and port", q, headersWith(tokenHeader, "Host", "metrics.example:9443"), 200, "n\n3\n"},
		{"DNS rebinding", q, headersWith(tokenHeader, "Host", "attacker.example:"+addr[strings.LastIndex(addr, ":")+1:]), 421, "is not a name of this server"},
		{"allowed name on another port", q, headersWith(tokenHeader, "Host", "metrics.example:80"), 421, "--http-allow-host"},
		{"foreign origin", q, headersWith(tokenHeader, "Origin", "https://attacker.example"), 403, "cross-origin request refused"},
		{"cross-site subresource", q, headersWith(tokenHeader, "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"), 403, "cross-origin request refused"},
		{"same origin", q, headersWith(tokenHeader, "Origin", base), 200, "n\n3\n"},
		{"no token", q, nil, 401, "no bearer token"},
		{"wrong token", q, wrongTokenHeader, 401, "wrong bearer token"},
	})
	require.NotContains(t, p.out.String(), guardToken, "the token in the log")

	// One slow query holds the only slot; the next is refused at once.
	slowCtx, stopSlow := context.WithCancel(t.Context())
	slowDone := make(chan int, 1)
	go func() {
		// Until it gets the slot: the one of the request before may not be
		// released yet when its answer arrives.
		code := http.StatusTooManyRequests
		for code == http.StatusTooManyRequests {
			code = 0
			req, err := http.NewRequestWithContext(slowCtx, http.MethodGet, base+"/query?q="+url.QueryEscape("SELECT count(*) FROM range(1000000000000) t(i) WHERE hash(i) = 0"), nil)
			if err != nil {
				break
			}
			req.Header.Set("Authorization", "Bearer "+guardToken)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				code = resp.StatusCode
				resp.Body.Close()
			}
		}
		slowDone <- code
	}()
	var retryAfter, busy string
	embeddedtest.WaitFor(t, 30*time.Second, "a query refused while the slow one runs", func() bool {
		code, h, body := httpDo(t, http.MethodGet, base+q, tokenHeader)
		retryAfter, busy = h.Get("Retry-After"), body
		return code == http.StatusTooManyRequests
	})
	// A refused request takes no slot: refused again, the slow query holds it.
	code, _, _ := httpDo(t, http.MethodGet, base+q, tokenHeader)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "1", retryAfter)
	require.Contains(t, busy, "too many requests to /query in progress (at most 1 at a time)")
	stopSlow() // the client goes away: DuckDB is interrupted and the slot freed
	require.Zero(t, <-slowDone, "the slow query answered")
	embeddedtest.WaitFor(t, 30*time.Second, "the slot freed", func() bool {
		code, _, _ := httpDo(t, http.MethodGet, base+q, tokenHeader)
		return code == http.StatusOK
	})
}

// TestHTTPQueryTimeout: a query past --query-timeout is stopped and
// answered 504.
func TestHTTPQueryTimeout(t *testing.T) {
	t.Parallel()
	dataDir := smokeDataDir(t)
	addr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
	p := start(t, nil, "query", "--http", addr, "--data-dir", dataDir, "--query-timeout", "500ms", "--log-format", "json")
	embeddedtest.WaitFor(t, 30*time.Second, "query --http serving", func() bool { return strings.Contains(p.out.String(), "serving queries") })
	started := time.Now()
	code, body := getQuery(t, "http://"+addr+"/query", "SELECT count(*) FROM range(1000000000000) t(i) WHERE hash(i) = 0")
	require.Equal(t, http.StatusGatewayTimeout, code, body)
	require.Contains(t, body, "query timed out after 500ms")
	require.Less(t, time.Since(started), 30*time.Second)
}

// TestHTTPGuardDev: every endpoint of `jetfleet dev --http` is behind the
// guard; /healthz and /readyz need no token, so probes need no secret.
func TestHTTPGuardDev(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough, "--http-token-file", tokenFile(t))
	base := "http://" + dev.http
	q := "/query?q=" + url.QueryEscape("SELECT 42 AS answer")
	checkGuard(t, base, []guardCase{
		{"healthz without token", "/healthz", nil, 200, "ok"},
		{"readyz without token", "/readyz", nil, 200, "ready"},
		{"status without token", "/status", nil, 401, "no bearer token"},
		{"status with a wrong token", "/status", wrongTokenHeader, 401, "wrong bearer token"},
		{"status", "/status", tokenHeader, 200, `"steps"`},
		{"metrics without token", "/metrics", nil, 401, "no bearer token"},
		{"metrics", "/metrics", tokenHeader, 200, "go_goroutines"},
		{"query without token", q, nil, 401, "no bearer token"},
		{"query", q, tokenHeader, 200, `"answer": 42`},
		{"query, DNS rebinding", q, headersWith(tokenHeader, "Host", "attacker.example"), 421, "is not a name of this server"},
		{"status, DNS rebinding", "/status", headersWith(tokenHeader, "Host", "attacker.example"), 421, "is not a name of this server"},
		{"healthz, DNS rebinding", "/healthz", headersWith(nil, "Host", "attacker.example"), 421, "is not a name of this server"},
		{"status from a foreign page", "/status", headersWith(tokenHeader, "Origin", "http://attacker.example"), 403, "cross-origin request refused"},
		{"query from a foreign page", q, headersWith(tokenHeader, "Origin", "http://attacker.example"), 403, "cross-origin request refused"},
		{"console without token", "/", nil, 401, "no bearer token"},
		{"console", "/", tokenHeader, 200, "<title>jetfleet console</title>"},
		{"console API without token", "/console/api/status", nil, 401, "no bearer token"},
		{"console API", "/console/api/status", tokenHeader, 200, `"write":false`},
		{"console API from a foreign page", "/console/api/deadletters", headersWith(tokenHeader, "Origin", "http://attacker.example"), 403, "cross-origin request refused"},
		{"console API, DNS rebinding", "/console/api/status", headersWith(tokenHeader, "Host", "attacker.example"), 421, "is not a name of this server"},
	})
	code, _, body := httpDo(t, http.MethodPost, base+"/console/api/replay", headersWith(tokenHeader, "Origin", "http://attacker.example"))
	require.Equal(t, http.StatusForbidden, code, "a console write from a foreign page: %s", body)
	code, h, _ := httpDo(t, http.MethodOptions, base+q, map[string]string{"Origin": "http://attacker.example", "Access-Control-Request-Method": "GET"})
	require.Equal(t, http.StatusForbidden, code, "a CORS preflight")
	require.Empty(t, h.Get("Access-Control-Allow-Origin"))
}

// TestHTTPGuardSupervisorAndWorker: the supervisor's and a worker's
// endpoints are behind the same guard.
func TestHTTPGuardSupervisorAndWorker(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	env := []string{"NATS_URL=" + srv.ClientURL(), "JETFLEET_HTTP_TOKEN=" + guardToken}
	for _, tc := range []struct {
		name  string
		args  []string
		ready string
	}{
		{"supervisor", []string{"supervisor"}, "serving /metrics"},
		{"worker", []string{"worker", "--pipeline", passthrough, "validate"}, "jetfleet worker running"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
			args := append([]string{tc.args[0], "--http", addr, "--log-format", "json"}, tc.args[1:]...)
			p := start(t, env, args...)
			embeddedtest.WaitFor(t, 60*time.Second, tc.name+" serving", func() bool { return strings.Contains(p.out.String(), tc.ready) })
			base := "http://" + addr
			embeddedtest.WaitFor(t, 30*time.Second, tc.name+" ready", func() bool { code, _, _ := httpDo(t, http.MethodGet, base+"/readyz", nil); return code == 200 })
			checkGuard(t, base, []guardCase{
				{"healthz without token", "/healthz", nil, 200, "ok"},
				{"status without token", "/status", nil, 401, "no bearer token"},
				{"status", "/status", tokenHeader, 200, `"steps"`},
				{"metrics without token", "/metrics", nil, 401, "no bearer token"},
				{"metrics", "/metrics", tokenHeader, 200, "go_goroutines"},
				{"DNS rebinding", "/metrics", headersWith(tokenHeader, "Host", "attacker.example"), 421, "is not a name of this server"},
				{"foreign page", "/status", headersWith(tokenHeader, "Origin", "http://attacker.example"), 403, "cross-origin request refused"},
			})
		})
	}
}

// TestHTTPOffLoopbackNeedsAToken: every command refuses to serve HTTP on
// an address other than loopback without a token, before it starts work.
func TestHTTPOffLoopbackNeedsAToken(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"dev", "--data-dir", "DATA", "--listen", "127.0.0.1:0", "--http", "0.0.0.0:0"},
		{"supervisor", "--nats", "nats://127.0.0.1:1", "--http", "0.0.0.0:0"},
		{"worker", "--nats", "nats://127.0.0.1:1", "--http", "0.0.0.0:0", "validate"},
		{"query", "--data-dir", "DATA", "--http", ":0"},
	} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for i, a := range args {
				if a == "DATA" {
					args[i] = dir
				}
			}
			out, code := jf(t, nil, args...)
			require.Equal(t, 2, code, out)
			require.Contains(t, out, "is not a loopback address")
			require.Contains(t, out, "JETFLEET_HTTP_TOKEN")
			require.NoDirExists(t, filepath.Join(dir, "nats"), "dev started its server")

			out, code = jf(t, []string{"JETFLEET_HTTP_TOKEN=short"}, args...)
			require.Equal(t, 2, code, out)
			require.Contains(t, out, "HTTP token of 5 characters, want at least 16")
		})
	}
}
