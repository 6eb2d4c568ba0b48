package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/embedded"
)

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run the NATS server with JetStream as its own process",
		Description: `Runs nats-server (built into jetfleet) with JetStream, from a nats-server config file
(--config, cluster blocks included) or the built-in nats.conf. Flags win over the file.
Workers, the supervisor and clients connect to it as to any nats-server.

   jetfleet server --store-dir /var/lib/jetfleet/nats
   jetfleet server --listen 127.0.0.1:4333 --sync always
   jetfleet server --config n1.conf

--sync says when JetStream fsyncs its files: "always" (every write; survives an OS
crash or power loss) or an interval (the built-in config's is 1s). A killed server
process loses nothing either way: written data sits in the OS page cache.
SIGINT or SIGTERM shuts down cleanly (after --lame-duck, if set, so clients move to
other cluster nodes first); a second signal stops at once.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "config", Aliases: []string{"c"}, Usage: "nats-server config file (default: the built-in nats.conf)"},
			&cli.StringFlag{Name: "listen", Usage: "client address host:port (default: the config's, 127.0.0.1:4222 built in; port 0 picks a free one)"},
			&cli.StringFlag{Name: "store-dir", Usage: "JetStream store directory (default: the config's store_dir, else .jetfleet/nats)", EnvVars: []string{"JETFLEET_STORE_DIR"}},
			&cli.StringFlag{Name: "sync", Usage: `JetStream fsync: "always" or an interval such as 1s (default: the config's)`},
			&cli.StringFlag{Name: "name", Usage: "server name (default: the config's; must differ between cluster nodes)"},
			&cli.DurationFlag{Name: "lame-duck", Usage: "on SIGTERM, stop accepting clients and spread their disconnects over this long first (0: shut down at once)"},
			&cli.DurationFlag{Name: "ready-timeout", Usage: "give up if the server does not accept clients within this time (a cluster node waits for its peers)", Value: time.Minute},
		}, logFlags()...),
		Action: runServer,
	}
}

func runServer(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	cfg := embedded.Config{
		ConfigFile:       c.String("config"),
		StoreDir:         c.String("store-dir"),
		ServerName:       c.String("name"),
		LameDuckDuration: c.Duration("lame-duck"),
		ReadyTimeout:     c.Duration("ready-timeout"),
		// An operator who names a non-loopback address means it.
		AllowRemote: true,
		Logger:      log,
	}
	if cfg.ConfigFile == "" && cfg.StoreDir == "" {
		cfg.StoreDir = filepath.Join(".jetfleet", "nats")
	}
	if l := c.String("listen"); l != "" {
		if cfg.Host, cfg.Port, err = splitHostPort(l); err != nil {
			return usagef(c, "--listen %q: %v", l, err)
		}
	}
	switch s := c.String("sync"); s {
	case "":
	case "always":
		cfg.SyncAlways = true
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return usagef(c, `--sync %q: want "always" or a positive interval such as 1s`, s)
		}
		cfg.SyncInterval = d
	}

	srv, err := embedded.Start(cfg)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	ctx, stop := signalContext(log)
	defer stop()
	sync := "always"
	if js := srv.JetStreamConfig(); js != nil && !js.SyncAlways {
		sync = js.SyncInterval.String()
	}
	log.Info().Str("url", srv.ClientURL()).Str("name", srv.Name()).Str("store", srv.StoreDir()).
		Str("sync", sync).Str("cluster", srv.ClusterName()).Msg("jetfleet server ready")
	if _, err := fmt.Fprintln(c.App.Writer, srv.ClientURL()); err != nil {
		return err
	}

	down := make(chan struct{})
	go func() {
		srv.WaitForShutdown()
		close(down)
	}()
	select {
	case <-ctx.Done():
	case <-down:
		return cli.Exit("nats-server stopped by itself (see the log above)", 1)
	}
	if cfg.LameDuckDuration > 0 {
		log.Info().Dur("lame_duck", cfg.LameDuckDuration).Msg("lame duck: moving clients away before shutdown")
		srv.LameDuckShutdown()
	}
	srv.Shutdown()
	log.Info().Msg("jetfleet server stopped")
	return nil
}
