package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:      "worker",
		Usage:     "run one step of the pipeline as its own process",
		ArgsUsage: "STEP",
		Description: `Runs the workers of one step (ingest, validate, transform, aggregate, and alert when
the pipeline has alert rules: record rules and webhook deliverers) of a pipeline
against a NATS server. The aggregator keeps its DuckDB state, writes the marts
under --data-dir and runs mart and anomaly alert rules after its flushes. Run as many
processes of a step as you like: replicas share the step's durable consumer.
Aggregators divide the key partitions of the clean stage: each owns a fixed set
(--partitions 0-3) or, with --claim, a fair share that moves to the others when
it dies; all of them must share --data-dir (docs/scale-out.md).
SIGINT or SIGTERM drains in-flight work and exits 0.

   jetfleet worker --nats nats://10.0.0.5:4222 --pipeline pipeline.yaml validate
   jetfleet worker --nats nats://10.0.0.5:4222 --data-dir /shared/jetfleet --claim aggregate`,
		Flags: commonFlags(append([]cli.Flag{
			pipelineFlag(),
			dataDirFlag(),
			memoryLimitFlag(),
			&cli.StringFlag{Name: "http", Usage: "serve /metrics, /healthz, /readyz and /status on this address (e.g. 127.0.0.1:9464; off by default; off loopback it needs --http-token)"},
			&cli.StringSliceFlag{Name: "dataset", Usage: "dataset to serve (repeatable; default: every dataset of the pipeline)"},
			&cli.IntFlag{Name: "replicas", Usage: "workers of this step in this process", Value: 1},
			&cli.DurationFlag{Name: "ack-wait", Usage: "redeliver a message not acked within this time (handlers get 80% of it)", Value: 30 * time.Second},
			&cli.IntFlag{Name: "max-deliver", Usage: "deliveries of a message before it is dead-lettered", Value: 5},
			&cli.IntFlag{Name: "max-ack-pending", Usage: "messages in flight per step and dataset, across replicas", Value: 1024},
			&cli.IntFlag{Name: "stream-replicas", Usage: "JetStream replicas of the streams and buckets this process creates (3 on a cluster; unset: 1, and existing ones keep theirs)", Value: 1},
			&cli.IntFlag{Name: "partition-count", Usage: "key partitions of the clean stage if this process creates JF_CLEAN (every process must agree)", Value: subjects.DefaultPartitions},
			&cli.StringFlag{Name: "partitions", Usage: "aggregate: the partitions this process owns, e.g. 0-3,6 (default: all)"},
			&cli.BoolFlag{Name: "claim", Usage: "aggregate: claim a fair share of partitions through leases and take over those of a replica that dies (see docs/scale-out.md)"},
			&cli.DurationFlag{Name: "lease-ttl", Usage: "aggregate --claim: a dead replica's partitions move after this long", Value: 10 * time.Second},
			bindOnlyFlag(),
		}, httpFlags()...)...),
		Action: runWorker,
	}
}

func runWorker(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef(c, "want exactly one STEP (validate or transform), got %d arguments", c.NArg())
	}
	step := c.Args().First()
	if _, ok := subjects.StepByName(step); !ok {
		return usagef(c, "unknown step %q (steps: %s)", step, strings.Join(fleet.StepNames(nil), ", ")+", alert")
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	spec, err := loadPipeline(c, log)
	if err != nil {
		return err
	}
	// Listen first: a busy port or a missing token fails before any work.
	var httpLn net.Listener
	var guard *httpguard.Guard
	if c.String("http") != "" {
		if httpLn, guard, err = listenHTTP(c, "http", log); err != nil {
			return err
		}
		defer httpLn.Close()
	}
	ctx, stop := signalContext(log)
	defer stop()
	nc, loss, err := connectService(c, "worker "+step, log, stop)
	if err != nil {
		return err
	}
	defer loss.close(nc)
	cfg := fleet.Config{Conn: nc, Logger: log, Version: version, Spec: spec}
	cfg.Datasets, cfg.Steps = c.StringSlice("dataset"), []string{step}
	cfg.Replicas = map[string]int{step: c.Int("replicas")}
	cfg.Streams = subjects.StreamOptions{Partitions: c.Int("partition-count"), BindOnly: bindOnly(c)}
	if c.IsSet("stream-replicas") { // unset: join existing streams whatever their replicas
		cfg.Streams.Replicas = c.Int("stream-replicas")
	}
	cfg.AggregatePartitions, cfg.AggregateClaim, cfg.LeaseTTL = c.String("partitions"), c.Bool("claim"), c.Duration("lease-ttl")
	if cfg.AggregateClaim && cfg.AggregatePartitions != "" {
		return usagef(c, "--claim and --partitions exclude each other: a replica either claims partitions or owns a fixed set")
	}
	if err := checkPartitionCount(c); err != nil {
		return err
	}
	if c.IsSet("lease-ttl") && c.Duration("lease-ttl") < time.Second {
		return usagef(c, "--lease-ttl %s: want at least 1s", c.Duration("lease-ttl"))
	}
	cfg.Consumer = subjects.ConsumerOptions{AckWait: c.Duration("ack-wait"), MaxDeliver: c.Int("max-deliver"), MaxAckPending: c.Int("max-ack-pending")}
	fl, err := buildFleet(c, cfg)
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	members := fl.Members
	if len(members) == 0 {
		msg := fmt.Sprintf("no workers for step %s on datasets %s", step, strings.Join(c.StringSlice("dataset"), ","))
		if ext := externalDatasets(spec, step); len(ext) > 0 {
			msg += fmt.Sprintf(" (external_steps hands it to a program outside jetfleet for %s)", strings.Join(ext, ", "))
		}
		return cli.Exit(msg, 2)
	}
	if cfg.Streams.BindOnly {
		// Every reason at once, before any member starts and fails alone;
		// a server not reachable yet is waited for, as a worker's bind does.
		if err := checkBindOnly(ctx, fl, log); err != nil {
			if lost := loss.exit(); lost != nil {
				return lost
			}
			return cli.Exit(fmt.Sprintf("worker %s: --bind-only: %v", step, err), 1)
		}
		log.Info().Msg("bind-only: streams, consumers and buckets are in place")
	}
	if err := fl.Prepare(ctx); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer func() { _ = fl.Close(context.WithoutCancel(ctx)) }()
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
	for _, m := range members {
		tree.Add(m.Name, m.Run)
	}
	stopControl, err := serveControl(fl)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer stopControl()
	if httpLn != nil {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		// The probes read only this process's own consumers: a step's user
		// may not list consumers or read the account (docs/security.md).
		handler, err := supervisor.NewHandler(supervisor.HandlerConfig{JS: js, Tree: tree, Logger: log, ReadyFunc: fleetReady(fl), Own: &supervisor.OwnScope{BeatsFunc: fl.Beats}})
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		srv := serveHTTP(httpLn, guard.Wrap(handler), log)
		defer func() { _ = srv.Shutdown(context.WithoutCancel(ctx)) }()
	}
	log.Info().Str("step", step).Int("workers", len(members)).Str("nats", workers.RedactURL(lookup(c, "nats"))).Msg("jetfleet worker running")
	if err := tree.Run(ctx); err != nil {
		return errors.Join(loss.exit(), cli.Exit(err.Error(), 1))
	}
	if err := loss.exit(); err != nil {
		return err
	}
	loss.closing.Store(true)
	_ = nc.Drain()
	return nil
}

// externalDatasets lists the datasets of spec whose step runs outside jetfleet.
func externalDatasets(spec *pipeline.Spec, step string) []string {
	var out []string
	for _, ds := range spec.Datasets {
		if ds.External(step) {
			out = append(out, ds.Name)
		}
	}
	return out
}

// fleetReady is /readyz's check of the fleet's workers: not ready while
// one waits for something before it consumes (an empty lookup table).
func fleetReady(fl *fleet.Fleet) func() error {
	return func() error {
		if w := fl.Waiting(); len(w) > 0 {
			return errors.New(strings.Join(w, "; "))
		}
		return nil
	}
}

// checkBindOnly checks that what the fleet binds to exists and matches the
// contract, retrying with backoff while JetStream does not answer (the
// connection's own log says why); what is missing or conflicting is
// returned at once.
func checkBindOnly(ctx context.Context, fl *fleet.Fleet, log zerolog.Logger) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fl.Check(actx)
		cancel()
		if err == nil || errors.Is(err, subjects.ErrNotSetUp) || errors.Is(err, subjects.ErrStreamConflict) ||
			errors.Is(err, subjects.ErrConsumerConflict) || errors.Is(err, subjects.ErrServerTooOld) {
			return err
		}
		delay := backoff.Delay(200*time.Millisecond, 10*time.Second, attempt)
		log.Warn().Err(err).Int("attempt", attempt).Dur("retry_in", delay).Msg("waiting for JetStream")
		if !backoff.Sleep(ctx, delay) {
			return ctx.Err()
		}
	}
}
