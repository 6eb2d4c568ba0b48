package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/marts/query"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run an embedded NATS server and the whole fleet in one process",
		Description: `Starts nats-server with JetStream in this process (loopback only, data under --data-dir),
every worker of the pipeline, and serves the console at / (docs/console.md),
/healthz, /readyz, /metrics, /status and /query (read-only SQL over the marts:
GET /query?q=SELECT...&format=csv) over HTTP. The console only reads unless
--console-write is given.
Outside clients connect to --listen: jetfleet publish, nats pub, nats.js.
HTTP answers requests addressed to localhost or the bound IP (--http-allow-host adds
names), never cross-origin browser requests, and with --http-token only requests that
carry it (all but /healthz and /readyz); see docs/security.md.

   jetfleet dev --demo
   jetfleet dev --pipeline examples/market/pipeline.yaml --demo
   jetfleet dev --data-dir /tmp/jf --listen 127.0.0.1:4333 --http 127.0.0.1:8181

SIGINT or SIGTERM drains the fleet (in-flight records finish and are acked) and exits 0.`,
		Flags: append([]cli.Flag{
			dataDirFlag(),
			memoryLimitFlag(),
			&cli.StringFlag{Name: "listen", Usage: "NATS client address (loopback)", Value: "127.0.0.1:4222"},
			&cli.StringFlag{Name: "http", Usage: "address for the console (/), /healthz, /readyz, /metrics, /status and /query", Value: "127.0.0.1:8080"},
			&cli.StringFlag{Name: "nats-config", Usage: "nats-server config file (default: the built-in nats.conf)"},
			pipelineFlag(),
			&cli.BoolFlag{Name: "demo", Usage: "also publish sample data so data flows: shop orders, or ticks for examples/market"},
			&cli.Float64Flag{Name: "demo-rate", Usage: "demo records per second", Value: 5},
		}, append(append(append(httpFlags(), consoleFlags()...), queryFlags()...), logFlags()...)...),
		Action: runDev,
	}
}

func runDev(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	host, port, err := splitHostPort(c.String("listen"))
	if err != nil {
		return usagef(c, "--listen %q: %v", c.String("listen"), err)
	}
	spec, err := loadPipeline(c, log)
	if err != nil {
		return err
	}
	if err := checkQueryFlags(c); err != nil {
		return err
	}
	httpLn, guard, err := listenHTTP(c, "http", log)
	if err != nil {
		return err
	}
	defer httpLn.Close()

	dataDir := c.String("data-dir")
	srv, err := embedded.Start(embedded.Config{
		StoreDir:   filepath.Join(dataDir, "nats"),
		ConfigFile: c.String("nats-config"),
		Host:       host,
		Port:       port,
		Logger:     log,
	})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer srv.Shutdown()

	ctx, stop := signalContext(log)
	defer stop()

	nc, err := nats.Connect(srv.ClientURL(), append(connectOptions(c, "dev", log), nats.InProcessServer(srv))...)
	if err != nil {
		return cli.Exit(fmt.Sprintf("connect to the embedded server: %v", err), 1)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if err := subjects.Ensure(ctx, js, subjects.StreamOptions{}); err != nil {
		return cli.Exit(err.Error(), 1)
	}

	fl, err := buildFleet(c, fleet.Config{
		Conn: nc, Logger: log, Version: version, Spec: spec, LoadLookups: true, QuietStart: true,
		// Beats carry the counters the console and status show: at 2s a
		// fresh fleet shows records moving within seconds (a beat is a
		// few hundred bytes per worker).
		HeartbeatInterval: 2 * time.Second,
	})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := fl.Prepare(ctx); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = fl.Close(closeCtx)
	}()
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
	for _, m := range fl.Members {
		tree.Add(m.Name, m.Run)
	}

	stopControl, err := serveControl(fl)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer stopControl()

	marts := supervisor.DirMarts(dataDir)
	sup, err := supervisor.New(supervisor.Config{Conn: nc, Logger: log, Version: version, Tree: tree, MartsFunc: marts, ProgressFunc: supervisor.DirProgress(dataDir)})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := sup.Start(ctx); err != nil {
		return cli.Exit(fmt.Sprintf("supervisor: %v", err), 1)
	}
	handler, err := supervisor.NewHandler(supervisor.HandlerConfig{JS: sup.JetStream(), Supervisor: sup, Tree: tree, MartsFunc: marts, Logger: log, ReadyFunc: fleetReady(fl)})
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	mux := http.NewServeMux()
	mux.Handle("/", handler)
	mux.Handle("/query", httpguard.Limit(c.Int("max-queries"), query.Handler(query.HandlerConfig{
		Engine:  query.Config{DataDir: dataDir, MemoryLimit: c.String("memory-limit")},
		Timeout: c.Duration("query-timeout"),
	})))
	snap := []supervisor.SnapshotOption{supervisor.WithMarts(marts), supervisor.WithProgress(supervisor.DirProgress(dataDir)), supervisor.WithTree(tree)}
	stopConsole, err := startConsole(ctx, c, mux, sup.JetStream(), nc, spec, dataDir, snap, log)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	httpSrv := serveHTTP(httpLn, guard.Wrap(mux), log)

	demoDone := make(chan struct{})
	d, fits := pickDemo(spec)
	if c.Bool("demo") && !fits {
		log.Warn().Str("pipeline", spec.Name).Msg("--demo has no sample data for this pipeline (it has " + demoNames() + "); publish records yourself")
	}
	if c.Bool("demo") && fits {
		go func() {
			defer close(demoDone)
			runDemo(ctx, js, d, c.Float64("demo-rate"), log)
		}()
	} else {
		close(demoDone)
	}

	bannerDone := make(chan struct{})
	go func() {
		defer close(bannerDone)
		if waitRunning(ctx, fl, 15*time.Second) {
			b := devBanner{
				nats: srv.ClientURL(), http: "http://" + httpLn.Addr().String(), dataDir: dataDir, spec: spec,
				builtin: c.String("pipeline") == "", write: c.Bool("console-write"), workers: len(fl.Workers()),
			}
			if c.Bool("demo") && fits {
				b.demo, b.demoRate = &d, c.Float64("demo-rate")
			}
			b.print(c, log)
		}
	}()
	treeErr := tree.Run(ctx)
	<-bannerDone
	<-demoDone

	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(shutdownCtx)
	stopConsole(shutdownCtx)
	if err := sup.Stop(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("stop supervisor")
	}
	if err := nc.Drain(); err != nil {
		log.Warn().Err(err).Msg("drain NATS connection")
	}
	srv.Shutdown()
	log.Info().Msg("jetfleet dev stopped")
	if treeErr != nil {
		return cli.Exit(treeErr.Error(), 1)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	if port == 0 {
		port = -1 // any free port
	}
	return host, port, nil
}
