package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:      "worker",
		Usage:     "run one step of the pipeline as its own process",
		ArgsUsage: "STEP",
		Description: `Runs the workers of one step (validate, transform) against a NATS server. Run as many
processes of a step as you like: replicas share the step's durable consumer.
SIGINT or SIGTERM drains in-flight work and exits 0.

   jetfleet worker --nats nats://10.0.0.5:4222 --dataset orders validate`,
		Flags: commonFlags(
			&cli.StringSliceFlag{Name: "dataset", Usage: "dataset to serve (repeatable)", Value: cli.NewStringSlice("orders")},
			&cli.IntFlag{Name: "replicas", Usage: "workers of this step in this process", Value: 1},
			&cli.DurationFlag{Name: "ack-wait", Usage: "redeliver a message not acked within this time (handlers get 80% of it)", Value: 30 * time.Second},
			&cli.IntFlag{Name: "max-deliver", Usage: "deliveries of a message before it is dead-lettered", Value: 5},
			&cli.IntFlag{Name: "max-ack-pending", Usage: "messages in flight per step and dataset, across replicas", Value: 1024},
			&cli.IntFlag{Name: "stream-replicas", Usage: "JetStream replicas of the streams if this process creates them (3 on a cluster)", Value: 1},
		),
		Action: runWorker,
	}
}

func runWorker(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef(c, "want exactly one STEP (validate or transform), got %d arguments", c.NArg())
	}
	step := c.Args().First()
	if _, ok := subjects.StepByName(step); !ok {
		return usagef(c, "unknown step %q", step)
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(log)
	defer stop()
	nc, err := connectService(c, "worker "+step, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	members, err := fleet.Build(fleet.Config{
		Conn: nc, Logger: log, Version: version,
		Datasets: c.StringSlice("dataset"), Steps: []string{step},
		Replicas: map[string]int{step: c.Int("replicas")},
		Streams:  subjects.StreamOptions{Replicas: c.Int("stream-replicas")},
		Consumer: subjects.ConsumerOptions{AckWait: c.Duration("ack-wait"), MaxDeliver: c.Int("max-deliver"), MaxAckPending: c.Int("max-ack-pending")},
	})
	if err != nil {
		return cli.Exit(err.Error(), 2)
	}
	if len(members) == 0 {
		return cli.Exit(fmt.Sprintf("no workers for step %s on datasets %s", step, strings.Join(c.StringSlice("dataset"), ",")), 2)
	}
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
	for _, m := range members {
		tree.Add(m.Name, m.Run)
	}
	log.Info().Str("step", step).Int("workers", len(members)).Str("nats", redact(lookup(c, "nats"))).Msg("jetfleet worker running")
	if err := tree.Run(ctx); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	_ = nc.Drain()
	return nil
}
