package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func setupCommand() *cli.Command {
	return &cli.Command{
		Name:  "setup",
		Usage: "create or update the streams, consumers and buckets a pipeline needs (run by an admin)",
		Description: `Creates what every process of the pipeline binds to: the stage streams and
JF_ADVISORIES, the durable consumer of every step and dataset (all partitions of the
aggregators), the supervisors' advisory consumer, the jf_fleet, jf_alerts, jf_partitions
and lookup-table buckets and the jf-landing object store. Run it once as the admin user
(ops in the secure config), and again after the pipeline gains a dataset, step or table;
it is idempotent and prints what it created or changed. It never deletes, and refuses a
stream whose shape conflicts with the contract (delete it by hand).

Workers and supervisors that authenticate (--user or --creds) then only bind to what
exists (--bind-only) and refuse to start, saying what is missing, when it is not there.

   jetfleet setup --pipeline pipeline.yaml --stream-replicas 3`,
		Flags: commonFlags(
			pipelineFlag(),
			&cli.IntFlag{Name: "stream-replicas", Usage: "JetStream replicas of the streams and buckets (3 on a cluster; unset: 1, and existing ones keep theirs)", Value: 1},
			&cli.IntFlag{Name: "partition-count", Usage: "key partitions of the clean stage when JF_CLEAN is created", Value: subjects.DefaultPartitions},
			&cli.DurationFlag{Name: "ack-wait", Usage: "consumers: redeliver a message not acked within this time", Value: 30 * time.Second},
			&cli.IntFlag{Name: "max-deliver", Usage: "consumers: deliveries of a message before it is dead-lettered", Value: 5},
			&cli.IntFlag{Name: "max-ack-pending", Usage: "consumers: messages in flight per step and dataset", Value: 1024},
			&cli.DurationFlag{Name: "lease-ttl", Usage: "jf_partitions: a dead aggregator's partitions move after this long (worker --claim)", Value: 10 * time.Second},
		),
		Action: runSetup,
	}
}

func runSetup(c *cli.Context) error {
	log, spec, err := startPipelineCommand(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(log)
	defer stop()
	nc, err := connectOnce(ctx, c, "setup", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	cfg := fleet.Config{Conn: nc, Logger: log, Version: version, Spec: spec, LeaseTTL: c.Duration("lease-ttl")}
	cfg.Streams = subjects.StreamOptions{Partitions: c.Int("partition-count")}
	if c.IsSet("stream-replicas") {
		cfg.Streams.Replicas = c.Int("stream-replicas")
	}
	cfg.Consumer = subjects.ConsumerOptions{AckWait: c.Duration("ack-wait"), MaxDeliver: c.Int("max-deliver"), MaxAckPending: c.Int("max-ack-pending")}
	changes, err := fleet.Setup(ctx, cfg)
	counts := map[string]int{}
	for _, ch := range changes {
		counts[ch.Action]++
		fmt.Fprintln(c.App.Writer, ch.String())
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("setup: %v", err), 1)
	}
	fmt.Fprintf(c.App.Writer, "setup of pipeline %s: %d created, %d updated, %d unchanged\n",
		spec.Name, counts[subjects.ActionCreated], counts[subjects.ActionUpdated], counts[subjects.ActionUnchanged])
	return nil
}

// bindOnlyFlag makes a long-running process bind to what `jetfleet
// setup` made instead of creating it.
func bindOnlyFlag() cli.Flag {
	return &cli.BoolFlag{
		Name: "bind-only", EnvVars: []string{"JETFLEET_BIND_ONLY"},
		Usage: "create no stream, consumer or bucket: bind to what jetfleet setup made, refuse to start when it is missing (default: on when authenticating with --user, --creds or a user in the URL)",
	}
}

// bindOnly reads --bind-only. Unset, a process that authenticates binds
// only: a server with users is one where an admin runs setup, and its
// worker users may not create (docs/security.md).
func bindOnly(c *cli.Context) bool {
	if c.IsSet("bind-only") {
		return c.Bool("bind-only")
	}
	if lookup(c, "user") != "" || lookup(c, "creds") != "" {
		return true
	}
	for _, u := range strings.Split(lookup(c, "nats"), ",") {
		if scheme, rest, ok := strings.Cut(u, "://"); ok && scheme != "" && strings.Contains(strings.SplitN(rest, "/", 2)[0], "@") {
			return true
		}
	}
	return false
}
