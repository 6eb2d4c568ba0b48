package httpguard_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/httpguard"
)

const token = "0123456789abcdef-token"

func tcp(s string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", s)
	if err != nil {
		panic(err)
	}
	return a
}

func TestNewRefusesUnsafeConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  httpguard.Config
		want error // nil: accepted
	}{
		{"loopback without token", httpguard.Config{Addr: tcp("127.0.0.1:8080")}, nil},
		{"IPv6 loopback without token", httpguard.Config{Addr: tcp("[::1]:8080")}, nil},
		{"all interfaces without token", httpguard.Config{Addr: tcp("0.0.0.0:8080")}, httpguard.ErrTokenRequired},
		{"IPv6 any without token", httpguard.Config{Addr: tcp("[::]:8080")}, httpguard.ErrTokenRequired},
		{"port only without token", httpguard.Config{Addr: &net.TCPAddr{Port: 8080}}, httpguard.ErrTokenRequired},
		{"private address without token", httpguard.Config{Addr: tcp("10.1.2.3:8080")}, httpguard.ErrTokenRequired},
		{"private address with token", httpguard.Config{Addr: tcp("10.1.2.3:8080"), Token: token}, nil},
		{"short token", httpguard.Config{Addr: tcp("127.0.0.1:8080"), Token: "secret"}, httpguard.ErrInvalidConfig},
		{"token with a space", httpguard.Config{Addr: tcp("127.0.0.1:8080"), Token: "0123456789 abcdefgh"}, httpguard.ErrInvalidConfig},
		{"no address", httpguard.Config{}, httpguard.ErrInvalidConfig},
		{"allowed host with a scheme", httpguard.Config{Addr: tcp("127.0.0.1:8080"), AllowHosts: []string{"http://x.example"}}, httpguard.ErrInvalidConfig},
		{"empty allowed host", httpguard.Config{Addr: tcp("127.0.0.1:8080"), AllowHosts: []string{""}}, httpguard.ErrInvalidConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := httpguard.New(tc.cfg)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
		})
	}
}

type request struct {
	path, host string
	header     map[string]string
}

func serve(t *testing.T, cfg httpguard.Config, req request) *httptest.ResponseRecorder {
	t.Helper()
	cfg.Logger = zerolog.New(zerolog.NewTestWriter(t))
	g, err := httpguard.New(cfg)
	require.NoError(t, err)
	h := g.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "served") }))
	path := req.path
	if path == "" {
		path = "/query"
	}
	r := httptest.NewRequest(http.MethodGet, "http://x"+path, nil)
	r.Host = req.host
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestGuard(t *testing.T) {
	t.Parallel()
	loop := httpguard.Config{Addr: tcp("127.0.0.1:8080")}
	all := httpguard.Config{Addr: tcp("0.0.0.0:8080"), Token: token}
	bound := httpguard.Config{Addr: tcp("10.1.2.3:8080"), Token: token}
	proxied := httpguard.Config{Addr: tcp("127.0.0.1:8080"), AllowHosts: []string{"jetfleet.example", "metrics.example:9443"}}
	wildcard := httpguard.Config{Addr: tcp("127.0.0.1:8080"), AllowHosts: []string{"*"}}
	withToken := httpguard.Config{Addr: tcp("127.0.0.1:8080"), Token: token}
	bearer := map[string]string{"Authorization": "Bearer " + token}
	for _, tc := range []struct {
		name string
		cfg  httpguard.Config
		req  request
		code int
		body string // in the body of a refusal
	}{
		// Host
		{"IP and port", loop, request{host: "127.0.0.1:8080"}, 200, ""},
		{"localhost", loop, request{host: "localhost:8080"}, 200, ""},
		{"localhost upper case with a dot", loop, request{host: "LOCALHOST.:8080"}, 200, ""},
		{"a .localhost name", loop, request{host: "jetfleet.localhost:8080"}, 200, ""},
		{"IPv6 loopback", loop, request{host: "[::1]:8080"}, 200, ""},
		{"tunnelled on another port", loop, request{host: "localhost:9000"}, 200, ""},
		{"DNS rebinding", loop, request{host: "attacker.example:8080"}, 421, `Host "attacker.example:8080" is not a name of this server`},
		{"rebinding to a name ending in localhost", loop, request{host: "evillocalhost:8080"}, 421, "not a name of this server"},
		{"no Host", loop, request{host: ""}, 421, "no Host header"},
		{"another IP", loop, request{host: "10.9.9.9:8080"}, 421, "not a name"},
		{"bound IP", bound, request{host: "10.1.2.3:8080", header: bearer}, 200, ""},
		{"other IP than the bound one", bound, request{host: "10.1.2.4:8080", header: bearer}, 421, "not a name"},
		{"any IP when bound to all", all, request{host: "192.168.7.7:8080", header: bearer}, 200, ""},
		{"a name when bound to all", all, request{host: "attacker.example:8080", header: bearer}, 421, "--http-allow-host"},
		{"allowed name", proxied, request{host: "jetfleet.example"}, 200, ""},
		{"allowed name any port", proxied, request{host: "JetFleet.Example:443"}, 200, ""},
		{"allowed name and port", proxied, request{host: "metrics.example:9443"}, 200, ""},
		{"allowed name, other port", proxied, request{host: "metrics.example:80"}, 421, "not a name"},
		{"a subdomain of an allowed name", proxied, request{host: "x.jetfleet.example"}, 421, "not a name"},
		{"any host allowed", wildcard, request{host: "whatever.example"}, 200, ""},
		// Origin and fetch metadata
		{"same origin", loop, request{host: "localhost:8080", header: map[string]string{"Origin": "http://localhost:8080"}}, 200, ""},
		{"foreign origin", loop, request{host: "127.0.0.1:8080", header: map[string]string{"Origin": "https://attacker.example"}}, 403, "Origin https://attacker.example is not 127.0.0.1:8080"},
		{"another local app", loop, request{host: "localhost:8080", header: map[string]string{"Origin": "http://localhost:3000"}}, 403, "cross-origin"},
		{"null origin", loop, request{host: "localhost:8080", header: map[string]string{"Origin": "null"}}, 403, "Origin: null"},
		{"origin of an allowed proxy", proxied, request{host: "127.0.0.1:8080", header: map[string]string{"Origin": "https://jetfleet.example"}}, 200, ""},
		{"wildcard host is no wildcard origin", wildcard, request{host: "127.0.0.1:8080", header: map[string]string{"Origin": "https://attacker.example"}}, 403, "cross-origin"},
		{"image from another site", loop, request{host: "127.0.0.1:8080", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}}, 403, "Sec-Fetch-Site: cross-site"},
		{"fetch from a sibling port", loop, request{host: "localhost:8080", header: map[string]string{"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}}, 403, "cross-origin"},
		{"link followed from another site", loop, request{host: "localhost:8080", header: map[string]string{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}}, 200, ""},
		{"typed in the address bar", loop, request{host: "localhost:8080", header: map[string]string{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}}, 200, ""},
		// Token
		{"token", withToken, request{host: "localhost:8080", header: bearer}, 200, ""},
		{"token, scheme in lower case", withToken, request{host: "localhost:8080", header: map[string]string{"Authorization": "bearer " + token}}, 200, ""},
		{"no token", withToken, request{host: "localhost:8080"}, 401, "no bearer token"},
		{"wrong token", withToken, request{host: "localhost:8080", header: map[string]string{"Authorization": "Bearer " + token + "x"}}, 401, "wrong bearer token"},
		{"basic auth", withToken, request{host: "localhost:8080", header: map[string]string{"Authorization": "Basic dXNlcjpwdw=="}}, 401, "not a bearer token"},
		{"token on /metrics", withToken, request{path: "/metrics", host: "localhost:8080"}, 401, "no bearer token"},
		{"token on /status", withToken, request{path: "/status", host: "localhost:8080"}, 401, "no bearer token"},
		{"probe without token", withToken, request{path: "/healthz", host: "localhost:8080"}, 200, ""},
		{"readiness probe without token", withToken, request{path: "/readyz", host: "10.0.0.1:8080"}, 421, "not a name"},
		{"readiness probe on the pod IP", all, request{path: "/readyz", host: "10.0.0.1:8080"}, 200, ""},
		{"a path that only starts like a probe", withToken, request{path: "/healthz/../query", host: "localhost:8080"}, 401, "no bearer token"},
		{"token does not excuse a foreign Host", withToken, request{host: "attacker.example", header: bearer}, 421, "not a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := serve(t, tc.cfg, tc.req)
			require.Equal(t, tc.code, w.Code, w.Body.String())
			for k := range w.Header() {
				require.False(t, strings.HasPrefix(k, "Access-Control-"), "CORS header %s", k)
			}
			if tc.code == 200 {
				require.Equal(t, "served", w.Body.String())
				require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
				return
			}
			require.Contains(t, w.Body.String(), tc.body)
			require.NotContains(t, w.Body.String(), "served")
			if tc.code == 401 {
				require.Equal(t, `Bearer realm="jetfleet"`, w.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

// TestGuardLogsRefusalsWithoutTheToken: a refused request is logged with
// its reason; a wrong token is not written to the log.
func TestGuardLogsRefusalsWithoutTheToken(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	g, err := httpguard.New(httpguard.Config{Addr: tcp("127.0.0.1:8080"), Token: token, Logger: zerolog.New(&logs)})
	require.NoError(t, err)
	r := httptest.NewRequest(http.MethodGet, "http://localhost:8080/status", nil)
	r.Header.Set("Authorization", "Bearer guessed-token-0123456789")
	w := httptest.NewRecorder()
	g.Wrap(http.NotFoundHandler()).ServeHTTP(w, r)
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Contains(t, logs.String(), `"reason":"wrong bearer token"`)
	require.NotContains(t, logs.String(), "guessed-token")
}
