package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func securityCommand() *cli.Command {
	return &cli.Command{
		Name:  "security",
		Usage: "server configuration for running a pipeline with one NATS user per role",
		Subcommands: []*cli.Command{{
			Name:  "conf",
			Usage: "write the nats-server config of a pipeline: TLS, one user per role, least privilege",
			Description: `Prints (or writes to --out) a nats-server config for the pipeline: TLS with client
certificates, JetStream, and the users publisher, ingest, validate, transform,
aggregate, alert (when the pipeline has alert rules), supervisor and ops, each
allowed only its own subjects: its datasets' stage subjects, its own consumers, its
own step's control and heartbeat subjects, its lookup tables, its inbox prefix
_INBOX_<user>. Only ops may create or change streams, consumers and buckets
(jetfleet setup). It includes site.conf for the certificate files and each user's
password hash (docs/security.md). Generate it again when the pipeline gains a
dataset, lookup table, alert rule or webhook.

   jetfleet security conf --pipeline pipeline.yaml --out /etc/nats/nats.conf`,
			Flags: append([]cli.Flag{
				pipelineFlag(),
				&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "write the config to this `FILE` (mode 0644; the secrets are in site.conf) instead of stdout"},
				&cli.IntFlag{Name: "partition-count", Usage: "key partitions of the clean stage (as given to jetfleet setup): one aggregator consumer each", Value: subjects.DefaultPartitions},
			}, logFlags()...),
			Action: runSecurityConf,
		}},
	}
}

func runSecurityConf(c *cli.Context) error {
	_, spec, err := startPipelineCommand(c)
	if err != nil {
		return err
	}
	shape := fleet.Shape(spec, c.Int("partition-count"))
	conf := subjects.ServerConf(shape, subjects.Roles(shape))
	if out := c.String("out"); out != "" {
		if err := os.WriteFile(out, []byte(conf), 0o644); err != nil { //nolint:gosec // no secret in it: those are in site.conf
			return cli.Exit(err.Error(), 1)
		}
		return nil
	}
	_, err = fmt.Fprint(c.App.Writer, conf)
	return err
}
