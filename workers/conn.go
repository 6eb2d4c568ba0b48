package workers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
)

// ReconnectOptions are the connection options of a long-running jetfleet
// process (worker, supervisor, dev): reconnect forever with jittered waits,
// so a server restart or a cluster node dying costs seconds, not the
// process; and log every disconnect (with its error), reconnect (with the
// server, credentials redacted) and the final close. Pass them to
// nats.Connect with the URLs of every node of the cluster.
func ReconnectOptions(log zerolog.Logger) []nats.Option {
	return []nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.ReconnectJitter(500*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err != nil { // nil: the process closed the connection itself
				log.Warn().Err(err).Msg("disconnected from NATS; reconnecting")
			}
		}),
		nats.ReconnectErrHandler(newConnErrLog(log).failed),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Uint64("reconnects", nc.Stats().Reconnects).Msg("reconnected to NATS")
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			ev := log.Debug() // a clean close is the process's own doing
			if err := nc.LastError(); err != nil {
				ev = log.Warn().Err(err)
			}
			ev.Msg("NATS connection closed")
		}),
	}
}

// RedactURL hides passwords and tokens in comma-separated server URLs
// before they reach a log or a heartbeat.
func RedactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if s := strings.Index(p, "://"); s >= 0 && s < at {
				parts[i] = p[:s+3] + "[REDACTED]" + p[at:]
			} else {
				parts[i] = "[REDACTED]" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// connState is what the worker reports about its connection.
func (w *Worker) connState() *subjects.ConnState {
	nc := w.cfg.Conn
	st := &subjects.ConnState{
		Status:     nc.Status().String(),
		URL:        RedactURL(nc.ConnectedUrl()),
		Server:     nc.ConnectedServerName(),
		Reconnects: nc.Stats().Reconnects,
	}
	if t := w.lastReconnect.Load(); t != nil {
		st.LastReconnect = t.UTC()
	}
	return st
}

// watchConn logs, with the worker's fields, when its connection drops and
// when it is back, and beats at once on reconnect so status shows the
// reconnect without waiting for the next beat. The client reconnects by
// itself (ReconnectOptions); the pull iterator re-issues its pull on
// reconnect.
func (w *Worker) watchConn(ctx context.Context) {
	ch := w.cfg.Conn.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED)
	defer w.cfg.Conn.RemoveStatusListener(ch)
	var downSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case s, ok := <-ch:
			if !ok {
				return
			}
			switch s {
			case nats.RECONNECTING, nats.DISCONNECTED:
				if downSince.IsZero() {
					downSince = time.Now()
					w.log.Warn().Str("status", s.String()).Msg("lost NATS connection; the client reconnects on its own")
				}
			case nats.CONNECTED:
				if downSince.IsZero() {
					continue
				}
				now := time.Now()
				w.lastReconnect.Store(&now)
				w.log.Info().Str("url", RedactURL(w.cfg.Conn.ConnectedUrl())).Str("server", w.cfg.Conn.ConnectedServerName()).
					Uint64("reconnects", w.cfg.Conn.Stats().Reconnects).Dur("down", now.Sub(downSince)).Msg("NATS connection back")
				downSince = time.Time{}
				w.beat()
			}
		}
	}
}

// connErrLog logs why connecting failed each time the cause changes: a
// client retrying forever against a wrong CA logs the x509 error once,
// not "context deadline exceeded" on every try.
type connErrLog struct {
	log  zerolog.Logger
	mu   sync.Mutex
	last string
}

func newConnErrLog(log zerolog.Logger) *connErrLog { return &connErrLog{log: log} }

func (l *connErrLog) failed(nc *nats.Conn, err error) {
	if err == nil {
		return
	}
	cause, unreachable := ConnError(err)
	l.mu.Lock()
	changed := cause != l.last
	l.last = cause
	l.mu.Unlock()
	if !changed {
		return
	}
	ev := l.log.Warn().Str("cause", cause).Str("url", nc.ConnectedUrlRedacted())
	if unreachable {
		ev = ev.Str("hint", HintUnreachable)
	}
	ev.Msg("cannot connect to NATS; retrying")
}

// HintUnreachable is what to check when no server answers at all.
const HintUnreachable = "is `jetfleet dev` or a nats-server running? set --nats or NATS_URL"

// ConnError says why connecting to NATS failed, in words that point at
// the fix, and whether no server answered (not running, wrong address)
// rather than one refusing this client (TLS, authorization): only then
// is "is a server running?" the right question.
func ConnError(err error) (cause string, unreachable bool) {
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		dnsErr    *net.DNSError
		netErr    net.Error
	)
	switch {
	case errors.Is(err, nats.ErrAuthorization):
		return "authorization violation: the server refused this user, password, token or credentials (--user with NATS_PASSWORD or --password-file, --creds)", false
	case errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired):
		return err.Error() + " (renew the credentials: --creds)", false
	case errors.Is(err, nats.ErrSecureConnRequired):
		return "the server requires TLS (use a tls:// URL, or --tls-ca): " + err.Error(), false
	case errors.Is(err, nats.ErrSecureConnWanted):
		return "TLS wanted but the server does not offer it (drop tls:// and --tls-ca, or turn TLS on at the server): " + err.Error(), false
	case errors.As(err, &unknownCA):
		return "TLS: the server's certificate is signed by an authority this client does not trust (--tls-ca names the CA that signed it): " + err.Error(), false
	case errors.As(err, &badHost):
		return "TLS: the server's certificate is not valid for this address (connect by a name or IP the certificate lists): " + err.Error(), false
	case errors.As(err, &invalid) || errors.As(err, &verify):
		return "TLS: the server's certificate is not accepted: " + err.Error(), false
	case strings.Contains(err.Error(), "tls: "):
		return "TLS handshake failed (a server that verifies clients wants --tls-cert and --tls-key): " + err.Error(), false
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, nats.ErrNoServers) || errors.As(err, &dnsErr) ||
		(errors.As(err, &netErr) && netErr.Timeout()) || errors.Is(err, nats.ErrTimeout):
		return err.Error(), true
	}
	return err.Error(), false
}
