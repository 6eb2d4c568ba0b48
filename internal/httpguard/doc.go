// Package httpguard is the front door of every HTTP server of the jetfleet
// binary (`dev`, `supervisor` and `worker` --http, `query --http`): one
// middleware in front of /query, /status, /metrics, /healthz and /readyz.
//
// A [Guard] refuses, before any handler runs:
//
//   - a Host header that is not a name of this server (421): localhost
//     names, loopback IPs, the bound IP (any IP when bound to 0.0.0.0 or
//     ::) and the names in Config.AllowHosts. A page on attacker.example
//     whose name is re-pointed at 127.0.0.1 (DNS rebinding) sends
//     Host: attacker.example, so it never reaches a handler. Ports are not
//     compared: SSH tunnels and proxies change them, and a rebinding page
//     has to use the real port anyway.
//   - a cross-origin browser request (403): an Origin that is not the
//     request's own host (or an allowed name), Origin "null", or
//     Sec-Fetch-Site cross-site/same-site on anything but a top-level
//     navigation. No Access-Control-* header is ever sent.
//   - with Config.Token set, a request without "Authorization: Bearer
//     <token>" (401), except on Config.OpenPaths (/healthz and /readyz,
//     so that probes need no secret; they reveal only up or not).
//
// [New] refuses a non-loopback address without a token ([ErrTokenRequired]).
// [Limit] caps the requests in progress of one handler (/query), answering
// the excess 429 with Retry-After.
//
//	g, err := httpguard.New(httpguard.Config{Addr: ln.Addr(), Token: tok, Logger: log})
//	mux.Handle("/query", httpguard.Limit(4, query.Handler(qcfg)))
//	srv := &http.Server{Handler: g.Wrap(mux)}
package httpguard
