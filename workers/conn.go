package workers

import (
	"context"
	"strings"
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
