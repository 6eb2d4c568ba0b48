package main

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/console"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/supervisor"
)

func consoleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "console-write", Usage: "let the console at / replay dead letters and pause, resume or drain steps (off: it only reads)", EnvVars: []string{"JETFLEET_CONSOLE_WRITE"}},
	}
}

// startConsole starts the console and mounts it at / and /console/ on
// mux; the returned func stops it.
func startConsole(ctx context.Context, c *cli.Context, mux *http.ServeMux, js jetstream.JetStream, nc *nats.Conn, spec *pipeline.Spec,
	dataDir string, snap []supervisor.SnapshotOption, log zerolog.Logger,
) (func(context.Context), error) {
	cfg := console.Config{
		JS: js, Conn: nc, Spec: spec, Snapshot: snap, DataDir: dataDir, Write: c.Bool("console-write"), Logger: log,
		MemoryLimit: c.String("memory-limit"), MaxQueries: c.Int("max-queries"), QueryTimeout: c.Duration("query-timeout"),
	}
	con, err := console.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := con.Start(ctx); err != nil {
		return nil, err
	}
	mux.Handle("GET /{$}", con)
	mux.Handle("/console/", con)
	return func(ctx context.Context) { _ = con.Stop(ctx) }, nil
}
