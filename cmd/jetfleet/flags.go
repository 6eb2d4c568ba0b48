package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

const defaultNATSURL = "nats://127.0.0.1:4222"

// natsFlags are the connection flags; every command that talks to NATS
// defines them, since urfave/cli stops parsing at the first argument.
func natsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats", Aliases: []string{"s"}, Usage: "NATS server URL(s), comma-separated", EnvVars: []string{"NATS_URL"}, Value: defaultNATSURL},
		&cli.StringFlag{Name: "creds", Usage: "NATS credentials file (user JWT and seed)", EnvVars: []string{"NATS_CREDS"}},
		&cli.StringFlag{Name: "user", Usage: "NATS user name (with --password)", EnvVars: []string{"NATS_USER"}},
		&cli.StringFlag{Name: "password", Usage: "NATS password (prefer NATS_PASSWORD or --password-file: flags and URLs show in ps)", EnvVars: []string{"NATS_PASSWORD"}},
		&cli.StringFlag{Name: "password-file", Usage: "`FILE` holding the NATS password (its first line), kept out of ps and the shell history", EnvVars: []string{"NATS_PASSWORD_FILE"}},
		&cli.StringFlag{Name: "tls-ca", Usage: "CA certificate `FILE` to verify the server (turns TLS on)", EnvVars: []string{"NATS_CA"}},
		&cli.StringFlag{Name: "tls-cert", Usage: "client certificate `FILE` (with --tls-key), for servers that verify clients", EnvVars: []string{"NATS_CERT"}},
		&cli.StringFlag{Name: "tls-key", Usage: "client private key `FILE`", EnvVars: []string{"NATS_KEY"}},
		&cli.StringFlag{Name: "inbox-prefix", Usage: "subject prefix of reply inboxes (default _INBOX), so a server can give each user its own", EnvVars: []string{"NATS_INBOX_PREFIX"}},
	}
}

func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Usage: "trace, debug, info, warn or error", Value: "info", EnvVars: []string{"JETFLEET_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Usage: "json or console (default: console when stderr is a terminal)", EnvVars: []string{"JETFLEET_LOG_FORMAT"}},
	}
}

// commonFlags are the flags of a command that talks to NATS: connection
// and logging (logging flags also work before the command name).
func commonFlags(extra ...cli.Flag) []cli.Flag {
	return append(append(extra, natsFlags()...), logFlags()...)
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(c *cli.Context) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(strings.ToLower(lookup(c, "log-level")))
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Nop(), usagef(c, "bad --log-level %q (trace, debug, info, warn, error)", lookup(c, "log-level"))
	}
	var w io.Writer = os.Stderr
	switch f := lookup(c, "log-format"); f {
	case "":
		if isatty.IsTerminal(os.Stderr.Fd()) {
			w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000"}
		}
	case "console":
		w = zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: "15:04:05.000", NoColor: !isatty.IsTerminal(os.Stderr.Fd())}
	case "json":
	default:
		return zerolog.Nop(), usagef(c, "bad --log-format %q (json or console)", f)
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

// lookup reads a string flag set on the command or, failing that, on the
// app (flags before the command name).
func lookup(c *cli.Context, name string) string {
	for _, ctx := range c.Lineage() {
		if ctx.IsSet(name) {
			return ctx.String(name)
		}
	}
	return c.String(name)
}

// connectOptions are shared by every connection jetfleet opens.
func connectOptions(c *cli.Context, name string, log zerolog.Logger) []nats.Option {
	return connectOptionsDenied(c, name, log, nil)
}

// connectOptionsDenied is connectOptions whose async error handler also
// calls deniedFunc with what to do about a permission the server refused
// (see permissionDenied): a one-shot command stops at once instead of
// waiting for an ack that cannot come.
func connectOptionsDenied(c *cli.Context, name string, log zerolog.Logger, deniedFunc func(error)) []nats.Option {
	inboxPrefix := lookup(c, "inbox-prefix")
	// Reconnect forever with jitter; log disconnect, reconnect and close.
	opts := append(workers.ReconnectOptions(log),
		nats.Name("jetfleet "+name),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if denied := permissionDenied(err, inboxPrefix); denied != nil {
				log.Error().Err(err).Msg(denied.Error())
				if deniedFunc != nil {
					deniedFunc(denied)
				}
				return
			}
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subscription", sub.Subject)
			}
			ev.Msg("NATS async error")
		}),
	)
	if creds := lookup(c, "creds"); creds != "" {
		opts = append(opts, nats.UserCredentials(creds))
	}
	if user := lookup(c, "user"); user != "" {
		pw, _ := password(c) // checkConnFlags reported a file it cannot read
		opts = append(opts, nats.UserInfo(user, pw))
	}
	if ca := lookup(c, "tls-ca"); ca != "" {
		opts = append(opts, nats.RootCAs(ca))
	}
	if cert, key := lookup(c, "tls-cert"), lookup(c, "tls-key"); cert != "" || key != "" {
		opts = append(opts, nats.ClientCert(cert, key))
	}
	if prefix := lookup(c, "inbox-prefix"); prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	return opts
}

// checkConnFlags fails early, with the flag's name, on connection flags
// that cannot work; nats.go would report them without saying which.
func checkConnFlags(c *cli.Context) error {
	for _, name := range []string{"creds", "tls-ca", "tls-cert", "tls-key"} {
		if f := lookup(c, name); f != "" {
			if _, err := os.Stat(f); err != nil {
				return cli.Exit(fmt.Sprintf("--%s: %v", name, err), 1)
			}
		}
	}
	if (lookup(c, "tls-cert") == "") != (lookup(c, "tls-key") == "") {
		return usagef(c, "--tls-cert and --tls-key go together")
	}
	if lookup(c, "password") != "" && lookup(c, "password-file") != "" {
		return usagef(c, "--password (NATS_PASSWORD) and --password-file (NATS_PASSWORD_FILE): give one")
	}
	if (lookup(c, "password") != "" || lookup(c, "password-file") != "") && lookup(c, "user") == "" {
		return usagef(c, "--password or --password-file needs --user")
	}
	if _, err := password(c); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	return nil
}

// password is --password, or the first line of --password-file.
func password(c *cli.Context) (string, error) {
	path := lookup(c, "password-file")
	if path == "" {
		return lookup(c, "password"), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	if pw = strings.TrimRight(pw, "\r"); pw == "" {
		return "", fmt.Errorf("--password-file %s: the first line is empty", path)
	}
	return pw, nil
}

// violationRe finds what the server refused in nats.go's text of a
// permission violation: Permissions Violation for Publish to "subject".
var violationRe = regexp.MustCompile(`(?i)for (publish|subscription) to "([^"]+)"`)

// permissionDenied says what to do about a permission violation the
// server sent (asynchronously: a refused publish is not answered), or
// nil for any other error. A refused subscription to the reply inbox
// means requests and JetStream acks can never arrive.
func permissionDenied(err error, inboxPrefix string) error {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return nil
	}
	m := violationRe.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("permission denied: %v", err)
	}
	op, subject := strings.ToLower(m[1]), m[2]
	inbox := cmpOr(inboxPrefix, nats.InboxPrefix[:len(nats.InboxPrefix)-1])
	switch {
	case op == "subscription" && strings.HasPrefix(subject, inbox+"."):
		if inboxPrefix == "" {
			return fmt.Errorf("no permission on the reply inbox %s: set --inbox-prefix (or NATS_INBOX_PREFIX) to the inbox prefix the server gives this user", subject)
		}
		return fmt.Errorf("no permission on the reply inbox %s: the server does not let this user subscribe to --inbox-prefix %s", subject, inboxPrefix)
	case op == "publish":
		return fmt.Errorf("permission denied for subject %s: the server does not let this user publish to it", subject)
	}
	return fmt.Errorf("permission denied: the server does not let this user subscribe to %s", subject)
}

func cmpOr(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// connectOnce connects for a one-shot command: a few quick attempts, then
// a clear error, since a person is waiting for the answer.
func connectOnce(ctx context.Context, c *cli.Context, name string, log zerolog.Logger) (*nats.Conn, error) {
	return connectOnceDenied(ctx, c, name, log, nil)
}

// connectOnceDenied is connectOnce with connectOptionsDenied.
func connectOnceDenied(ctx context.Context, c *cli.Context, name string, log zerolog.Logger, deniedFunc func(error)) (*nats.Conn, error) {
	url := lookup(c, "nats")
	if err := checkConnFlags(c); err != nil {
		return nil, err
	}
	opts := append(connectOptionsDenied(c, name, log, deniedFunc), nats.Timeout(2*time.Second))
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		nc, err := nats.Connect(url, opts...)
		if err == nil {
			if err := subjects.CheckServer(nc); err != nil {
				nc.Close()
				return nil, cli.Exit(err.Error(), 1)
			}
			return nc, nil
		}
		lastErr = err
		if _, unreachable := workers.ConnError(err); !unreachable {
			break // TLS and authorization do not pass by trying again
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
		}
	}
	cause, unreachable := workers.ConnError(lastErr)
	if unreachable {
		return nil, cli.Exit(fmt.Sprintf("cannot reach NATS at %s: %s (%s)", workers.RedactURL(url), cause, workers.HintUnreachable), 1)
	}
	return nil, cli.Exit(fmt.Sprintf("cannot connect to NATS at %s: %s", workers.RedactURL(url), cause), 1)
}

// connectService connects for a long-running process: it returns at once
// and keeps retrying in the background with backoff, logging each try,
// so a worker may start before its server. The returned connLoss is set
// and stop called when the client gives the connection up for good (it
// does after repeated authorization errors): the process then ends with
// the cause, for its manager to restart it, instead of running on a dead
// connection.
func connectService(c *cli.Context, name string, log zerolog.Logger, stopFunc func()) (*nats.Conn, *connLoss, error) {
	url := lookup(c, "nats")
	if err := checkConnFlags(c); err != nil {
		return nil, nil, err
	}
	loss := &connLoss{}
	opts := append(connectOptions(c, name, log), nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		cause, _ := workers.ConnError(err)
		return nil, nil, cli.Exit(fmt.Sprintf("cannot connect to NATS at %s: %s", workers.RedactURL(url), cause), 1)
	}
	closed := nc.Opts.ClosedCB
	nc.SetClosedHandler(func(nc *nats.Conn) {
		if closed != nil {
			closed(nc)
		}
		if err := nc.LastError(); err != nil && !loss.closing.Load() {
			cause, _ := workers.ConnError(err)
			loss.err.Store(&cause)
			stopFunc()
		}
	})
	if !nc.IsConnected() {
		ev := log.Warn().Str("url", workers.RedactURL(url))
		if err := nc.LastError(); err != nil {
			cause, unreachable := workers.ConnError(err)
			ev = ev.Str("cause", cause)
			if unreachable {
				ev = ev.Str("hint", workers.HintUnreachable)
			}
		}
		ev.Msg("cannot connect to NATS yet; retrying in the background (the log says why each time the cause changes)")
	}
	// Connected: refuse a server too old for the contract now (later, the
	// streams' and buckets' Ensure does).
	if err := subjects.CheckServer(nc); err != nil {
		loss.closing.Store(true)
		nc.Close()
		return nil, nil, cli.Exit(err.Error(), 1)
	}
	return nc, loss, nil
}

// connLoss is why a service's connection was given up, if it was.
type connLoss struct {
	closing atomic.Bool // the process closes it itself
	err     atomic.Pointer[string]
}

// close closes nc as the process's own doing.
func (l *connLoss) close(nc *nats.Conn) {
	l.closing.Store(true)
	nc.Close()
}

// exit is the error a service ends with after its connection was given
// up, or nil.
func (l *connLoss) exit() error {
	if cause := l.err.Load(); cause != nil {
		return cli.Exit(fmt.Sprintf("the NATS client gave the connection up: %s; exiting so that the process manager restarts this process", *cause), 1)
	}
	return nil
}

// signalContext is cancelled by the first SIGINT or SIGTERM (graceful
// drain); a second signal exits at once.
func signalContext(log zerolog.Logger) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case s := <-ch:
			log.Info().Str("signal", s.String()).Msg("shutting down (signal again to stop at once)")
			cancel()
		case <-ctx.Done():
			signal.Stop(ch)
			return
		}
		s := <-ch
		log.Warn().Str("signal", s.String()).Msg("hard stop")
		os.Exit(130)
	}()
	return ctx, func() {
		signal.Stop(ch)
		cancel()
	}
}

// session is what a one-shot command holds: its logger, a context that
// SIGINT or SIGTERM cancels, and a connection with JetStream.
type session struct {
	ctx  context.Context
	log  zerolog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	stop context.CancelFunc
}

// openSession sets up a one-shot command; Close releases it.
func openSession(c *cli.Context, name string, opts ...jetstream.JetStreamOpt) (*session, error) {
	log, err := newLogger(c)
	if err != nil {
		return nil, err
	}
	sigCtx, stopSignals := signalContext(log)
	// A permission the server refuses (the reply inbox, say) ends the
	// command at once, with what to do, instead of a timeout later.
	ctx, deny := context.WithCancelCause(sigCtx)
	stop := func() {
		deny(context.Canceled)
		stopSignals()
	}
	nc, err := connectOnceDenied(ctx, c, name, log, deny)
	if err != nil {
		stop()
		return nil, err
	}
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		nc.Close()
		stop()
		return nil, cli.Exit(fmt.Sprintf("jetstream: %v", err), 1)
	}
	return &session{ctx: ctx, log: log, nc: nc, js: js, stop: stop}, nil
}

// Close closes the connection and stops watching for signals.
func (s *session) Close() {
	s.nc.Close()
	s.stop()
}

// checkPartitionCount refuses a --partition-count the wire cannot carry.
func checkPartitionCount(c *cli.Context) error {
	if n := c.Int("partition-count"); n < 1 || n > subjects.MaxPartitions {
		return usagef(c, "--partition-count %d: want 1 to %d", n, subjects.MaxPartitions)
	}
	return nil
}
