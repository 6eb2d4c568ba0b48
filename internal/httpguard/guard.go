package httpguard

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"
)

// MinTokenLen is the shortest token [New] accepts: shorter ones can be
// guessed by a client that may try as often as it likes.
const MinTokenLen = 16

// Config configures [New].
type Config struct {
	// Addr is the address the server listens on (its listener's Addr).
	// Required.
	Addr net.Addr
	// AllowHosts are further names clients may send as Host: a reverse
	// proxy's, this machine's DNS name. "name" matches on any port,
	// "name:port" on that port only, and "*" any host at all (DNS
	// rebinding is then stopped by the token alone).
	AllowHosts []string
	// Token, if set, must come as "Authorization: Bearer <Token>" on every
	// path but OpenPaths. At least MinTokenLen bytes. Required when Addr
	// is not a loopback address.
	Token string
	// OpenPaths are served without the token. Default /healthz and
	// /readyz: probes often cannot carry a secret, and those answer only
	// whether the process is up and ready.
	OpenPaths []string
	// Logger gets one warning per refused request.
	Logger zerolog.Logger
}

// Guard checks every request before its handler. Safe for concurrent use.
type Guard struct {
	boundIP  net.IP
	boundAny bool // 0.0.0.0 or ::: every address of the machine
	anyHost  bool
	allow    []hostPort
	token    []byte
	open     map[string]bool
	log      zerolog.Logger
}

type hostPort struct{ host, port string }

// New checks cfg and returns its guard.
func New(cfg Config) (*Guard, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ip, _ := addrIP(cfg.Addr)
	g := &Guard{boundIP: ip, boundAny: ip.IsUnspecified(), open: map[string]bool{}, log: cfg.Logger}
	if cfg.Token != "" {
		g.token = []byte(cfg.Token)
	}
	for _, a := range cfg.AllowHosts {
		if a = strings.TrimSpace(a); a == "*" {
			g.anyHost = true
			continue
		}
		g.allow = append(g.allow, splitHost(a))
	}
	open := cfg.OpenPaths
	if open == nil {
		open = []string{"/healthz", "/readyz"}
	}
	for _, p := range open {
		g.open[p] = true
	}
	return g, nil
}

func (cfg *Config) validate() error {
	if cfg.Addr == nil {
		return fmt.Errorf("%w: no address", ErrInvalidConfig)
	}
	ip, err := addrIP(cfg.Addr)
	if err != nil {
		return fmt.Errorf("%w: address %s: %v", ErrInvalidConfig, cfg.Addr, err)
	}
	if cfg.Token == "" && !ip.IsLoopback() {
		return fmt.Errorf("%w: %s is not a loopback address", ErrTokenRequired, cfg.Addr)
	}
	if cfg.Token != "" && len(cfg.Token) < MinTokenLen {
		return fmt.Errorf("%w: HTTP token of %d characters, want at least %d", ErrInvalidConfig, len(cfg.Token), MinTokenLen)
	}
	if strings.ContainsFunc(cfg.Token, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("%w: HTTP token with spaces or control characters", ErrInvalidConfig)
	}
	for _, a := range cfg.AllowHosts {
		a = strings.TrimSpace(a)
		if a == "" || strings.ContainsAny(a, "/@ \t") {
			return fmt.Errorf("%w: allowed HTTP host %q: want a name, name:port or *", ErrInvalidConfig, a)
		}
	}
	return nil
}

// addrIP is the IP of a listener address.
func addrIP(a net.Addr) (net.IP, error) {
	if t, ok := a.(*net.TCPAddr); ok {
		if t.IP == nil { // ":8080"
			return net.IPv6unspecified, nil
		}
		return t.IP, nil
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("%q is not an IP address", host)
	}
	return ip, nil
}

// splitHost splits a Host header (or an allowed name) into a lower-case
// host without brackets or trailing dot, and its port ("" without one).
func splitHost(s string) hostPort {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"), ""
	}
	return hostPort{strings.ToLower(strings.TrimSuffix(host, ".")), port}
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reason := g.checkHost(r.Host); reason != "" {
			g.refuse(w, r, http.StatusMisdirectedRequest, reason)
			return
		}
		if reason := g.checkOrigin(r); reason != "" {
			g.refuse(w, r, http.StatusForbidden, reason)
			return
		}
		if g.token != nil && !g.open[r.URL.Path] {
			if reason := g.checkToken(r.Header.Get("Authorization")); reason != "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="jetfleet"`)
				g.refuse(w, r, http.StatusUnauthorized, reason)
				return
			}
		}
		// Query results are text a browser must never render as a page.
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

func (g *Guard) checkHost(header string) string {
	h := splitHost(header)
	switch {
	case h.host == "":
		return "no Host header"
	case g.anyHost, h.host == "localhost", strings.HasSuffix(h.host, ".localhost"):
		return ""
	}
	if ip := net.ParseIP(h.host); ip != nil && (ip.IsLoopback() || g.boundAny || ip.Equal(g.boundIP)) {
		return ""
	}
	if g.allowed(h) {
		return ""
	}
	return fmt.Sprintf("Host %q is not a name of this server: use localhost or its IP address, or allow the name with --http-allow-host", header)
}

// allowed reports whether h is one of the names of Config.AllowHosts.
func (g *Guard) allowed(h hostPort) bool {
	for _, a := range g.allow {
		if a.host == h.host && (a.port == "" || a.port == h.port) {
			return true
		}
	}
	return false
}

// checkOrigin refuses what a browser sends on behalf of another site: a
// fetch or XHR from a foreign page (Origin), and subresource loads such as
// <img src=".../query?q=..."> (Sec-Fetch-Site). A top-level navigation is
// let through: the page that started it cannot read the answer.
func (g *Guard) checkOrigin(r *http.Request) string {
	if site := r.Header.Get("Sec-Fetch-Site"); (site == "cross-site" || site == "same-site") && r.Header.Get("Sec-Fetch-Mode") != "navigate" {
		return fmt.Sprintf("cross-origin request refused (Sec-Fetch-Site: %s)", site)
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if origin == "null" || err != nil || u.Host == "" {
		return fmt.Sprintf("cross-origin request refused (Origin: %s)", origin)
	}
	if strings.EqualFold(u.Host, r.Host) || g.allowed(splitHost(u.Host)) {
		return ""
	}
	return fmt.Sprintf("cross-origin request refused: Origin %s is not %s", origin, r.Host)
}

func (g *Guard) checkToken(auth string) string {
	scheme, tok, _ := strings.Cut(auth, " ")
	switch {
	case auth == "":
		return "no bearer token: send Authorization: Bearer <token>"
	case !strings.EqualFold(scheme, "Bearer"):
		return "not a bearer token: send Authorization: Bearer <token>"
	case subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), g.token) != 1:
		return "wrong bearer token"
	}
	return ""
}

func (g *Guard) refuse(w http.ResponseWriter, r *http.Request, code int, reason string) {
	g.log.Warn().Str("remote", r.RemoteAddr).Str("host", r.Host).Str("method", r.Method).Str("path", r.URL.Path).
		Int("status", code).Str("reason", reason).Msg("http request refused")
	http.Error(w, reason, code)
}
