package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

func supervisorCommand() *cli.Command {
	return &cli.Command{
		Name:  "supervisor",
		Usage: "watch the fleet: heartbeats and liveness, dead letters from JetStream advisories, metrics",
		Description: `Runs until SIGINT/SIGTERM. Folds every worker's heartbeat into the fleet KV bucket
(a worker missing 3 beats is stale, one silent past --dead-after is dead), copies
messages JetStream gave up on to jf.dlq.<step>.<dataset>, and serves the console
at / (docs/console.md; read-only unless --console-write), /metrics, /healthz,
/readyz and /status on --http. Run one per fleet (more are harmless).
HTTP answers requests addressed to localhost or the bound IP (--http-allow-host adds
names); off loopback it needs --http-token (all but /healthz and /readyz require it).`,
		Flags: commonFlags(append([]cli.Flag{
			&cli.StringFlag{Name: "http", Usage: "address for the console (/), /metrics, /healthz, /readyz and /status (empty: none)", Value: "127.0.0.1:8081", EnvVars: []string{"JETFLEET_SUPERVISOR_HTTP"}},
			&cli.DurationFlag{Name: "dead-after", Usage: "a worker silent this long is dead", Value: 30 * time.Second},
			&cli.IntFlag{Name: "stale-beats", Usage: "missed heartbeats that make a worker stale", Value: 3},
			&cli.DurationFlag{Name: "gone-retention", Usage: "how long dead and stopped workers stay listed", Value: 10 * time.Minute},
			&cli.IntFlag{Name: "replicas", Usage: "replicas of the fleet KV bucket (3 on a cluster; unset: 1 when creating it, an existing bucket keeps its own)", Value: 1},
			&cli.StringFlag{Name: "data-dir", Usage: "the --data-dir of an aggregator on this machine: its marts and progress are reported to jetfleet status (status --wait-idle waits for them, and the books in status need them)", EnvVars: []string{"JETFLEET_DATA_DIR"}},
			bindOnlyFlag(),
		}, append(append(httpFlags(), consoleFlags()...), queryFlags()...)...)...),
		Action: runSupervisor,
	}
}

func runSupervisor(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(log)
	defer stop()
	var ln net.Listener
	var guard *httpguard.Guard
	if c.String("http") != "" {
		if ln, guard, err = listenHTTP(c, "http", log); err != nil {
			return err
		}
		defer ln.Close()
	}
	nc, loss, err := connectService(c, "supervisor", log, stop)
	if err != nil {
		return err
	}
	defer loss.close(nc)
	sup, err := supervisor.New(supervisor.Config{
		Conn: nc, Logger: log, Version: version,
		Streams:       supervisorStreams(c),
		DeadAfter:     c.Duration("dead-after"),
		StaleBeats:    c.Int("stale-beats"),
		GoneRetention: c.Duration("gone-retention"),
		MartsFunc:     supervisorMarts(c),
		ProgressFunc:  supervisorProgress(c),
	})
	if err != nil {
		return usagef(c, "%v", err)
	}
	if err := sup.Start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return cli.Exit(fmt.Sprintf("supervisor: %v", err), 1)
	}
	var srv *http.Server
	if ln != nil {
		h, err := supervisor.NewHandler(supervisor.HandlerConfig{JS: sup.JetStream(), Supervisor: sup, Logger: log})
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		mux := http.NewServeMux()
		mux.Handle("/", h)
		var snap []supervisor.SnapshotOption
		if m := supervisorMarts(c); m != nil {
			snap = append(snap, supervisor.WithMarts(m), supervisor.WithProgress(supervisorProgress(c)))
		}
		stopConsole, err := startConsole(ctx, c, mux, sup.JetStream(), nc, nil, c.String("data-dir"), snap, log)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer stopConsole(context.WithoutCancel(ctx))
		srv = serveHTTP(ln, guard.Wrap(mux), log)
		log.Info().Str("http", "http://"+ln.Addr().String()).Bool("console_write", c.Bool("console-write")).Msg("serving /metrics, /healthz, /readyz, /status and the console at /")
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv != nil {
		_ = srv.Shutdown(stopCtx)
	}
	if err := sup.Stop(stopCtx); err != nil {
		return errors.Join(loss.exit(), cli.Exit(fmt.Sprintf("supervisor stop: %v", err), 1))
	}
	return loss.exit()
}

// supervisorStreams passes --replicas only when set, so a supervisor
// started without it keeps a cluster's bucket at its replica count.
func supervisorStreams(c *cli.Context) subjects.StreamOptions {
	o := subjects.StreamOptions{BindOnly: bindOnly(c)}
	if c.IsSet("replicas") {
		o.Replicas = c.Int("replicas")
	}
	return o
}

// supervisorMarts reports the marts under --data-dir, nil without it.
func supervisorMarts(c *cli.Context) supervisor.MartsFunc {
	if dir := c.String("data-dir"); dir != "" {
		return supervisor.DirMarts(dir)
	}
	return nil
}

// supervisorProgress reports the aggregators' progress under --data-dir
// (what the books in status need), nil without it.
func supervisorProgress(c *cli.Context) supervisor.ProgressFunc {
	if dir := c.String("data-dir"); dir != "" {
		return supervisor.DirProgress(dir)
	}
	return nil
}
