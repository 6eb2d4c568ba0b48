package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// httpFlags say who may call a command's HTTP endpoints (docs/security.md).
func httpFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "http-allow-host", Usage: "also answer HTTP requests whose Host is `NAME` (NAME:PORT for one port, * for any): a reverse proxy's or this machine's DNS name; others than localhost and the bound IP get 421 (repeatable; env: comma-separated)", EnvVars: []string{"JETFLEET_HTTP_ALLOW_HOST"}},
		&cli.StringFlag{Name: "http-token", Usage: "bearer `TOKEN` (16+ characters) every HTTP endpoint but /healthz and /readyz requires; needed when --http is not loopback (prefer the env var or --http-token-file: flags show in ps)", EnvVars: []string{"JETFLEET_HTTP_TOKEN"}},
		&cli.StringFlag{Name: "http-token-file", Usage: "read the HTTP bearer token from `FILE`", EnvVars: []string{"JETFLEET_HTTP_TOKEN_FILE"}},
	}
}

// queryFlags bound what /query may cost.
func queryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "max-queries", Usage: "queries /query runs at a time; more are answered 429 with Retry-After (each may use --memory-limit)", Value: 4, EnvVars: []string{"JETFLEET_MAX_QUERIES"}},
		&cli.DurationFlag{Name: "query-timeout", Usage: "a /query request running longer is stopped and answered 504", Value: 60 * time.Second, EnvVars: []string{"JETFLEET_QUERY_TIMEOUT"}},
	}
}

// checkQueryFlags fails early on limits that cannot work.
func checkQueryFlags(c *cli.Context) error {
	if n := c.Int("max-queries"); n < 1 {
		return usagef(c, "--max-queries %d: want at least 1", n)
	}
	if d := c.Duration("query-timeout"); d <= 0 {
		return usagef(c, "--query-timeout %s: want more than 0", d)
	}
	return nil
}

// listenHTTP listens on the address of flag and returns the guard that
// every request to it must pass: Host, Origin and, if set, the token. An
// address other than loopback without a token is refused before anything
// is served.
func listenHTTP(c *cli.Context, flag string, log zerolog.Logger) (net.Listener, *httpguard.Guard, error) {
	token, err := httpToken(c)
	if err != nil {
		return nil, nil, err
	}
	addr := c.String(flag)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, cli.Exit(fmt.Sprintf("--%s %s: %v", flag, addr, err), 1)
	}
	g, err := httpguard.New(httpguard.Config{Addr: ln.Addr(), AllowHosts: c.StringSlice("http-allow-host"), Token: token, Logger: log})
	if err != nil {
		ln.Close()
		if errors.Is(err, httpguard.ErrTokenRequired) {
			return nil, nil, usagef(c, "--%s %s is not a loopback address, and its endpoints would answer anyone who reaches it: "+
				"set a token (JETFLEET_HTTP_TOKEN, --http-token-file or --http-token; clients send Authorization: Bearer <token>) or listen on 127.0.0.1", flag, addr)
		}
		return nil, nil, usagef(c, "%s", strings.TrimPrefix(err.Error(), httpguard.ErrInvalidConfig.Error()+": "))
	}
	return ln, g, nil
}

// httpToken is --http-token or the content of --http-token-file.
func httpToken(c *cli.Context) (string, error) {
	token, file := c.String("http-token"), c.String("http-token-file")
	if file == "" {
		return token, nil
	}
	if token != "" {
		return "", usagef(c, "give --http-token (JETFLEET_HTTP_TOKEN) or --http-token-file, not both")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", cli.Exit(fmt.Sprintf("--http-token-file: %v", err), 1)
	}
	if token = strings.TrimSpace(string(b)); token == "" {
		return "", cli.Exit(fmt.Sprintf("--http-token-file %s is empty", file), 1)
	}
	return token, nil
}

// serveHTTP serves handler on ln until the returned server is shut down.
func serveHTTP(ln net.Listener, handler http.Handler, log zerolog.Logger) *http.Server {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	return srv
}

// serveControl subscribes every worker of the fleet to its control
// subjects (pause, resume, drain), as the endpoints of the worker's NATS
// micro service (nats micro ls); the returned func deregisters them.
func serveControl(fl *fleet.Fleet) (func(), error) {
	var unsubs []func()
	stop := func() {
		for _, u := range unsubs {
			u()
		}
	}
	for _, w := range fl.Workers() {
		u, err := w.ServeControl()
		if err != nil {
			stop()
			return nil, err
		}
		unsubs = append(unsubs, u)
	}
	return stop, nil
}
