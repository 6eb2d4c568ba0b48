package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func pipelineCommand() *cli.Command {
	return &cli.Command{
		Name:  "pipeline",
		Usage: "check, test or print pipeline files",
		Subcommands: []*cli.Command{
			{
				Name:      "check",
				Usage:     "validate a pipeline file without running anything",
				ArgsUsage: "FILE",
				Description: `Parses FILE strictly: unknown keys, values of the wrong kind, expressions that do
not compile and references to missing datasets, lookup tables or CSV files are
errors, each printed as file:line:column: field: what was expected. Exit 0 when
the file is good, 1 when it is not.

   jetfleet pipeline check examples/shop/pipeline.yaml`,
				Action: runPipelineCheck,
			},
			pipelineTestCommand(),
			{
				Name:  "default",
				Usage: "print the built-in shop pipeline (a starting point for your own)",
				Action: func(c *cli.Context) error {
					_, err := c.App.Writer.Write(pipeline.DefaultYAML())
					return err
				},
			},
		},
	}
}

func runPipelineCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef(c, "want exactly one FILE, got %d arguments", c.NArg())
	}
	spec, err := pipeline.Load(c.Args().First())
	if err != nil {
		var msgs []string
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				msgs = append(msgs, e.Error())
			}
		} else {
			msgs = []string{err.Error()}
		}
		if !errors.Is(err, pipeline.ErrInvalidSpec) {
			return cli.Exit(strings.Join(msgs, "\n"), 1)
		}
		return cli.Exit(fmt.Sprintf("%s\n%s: %d problem(s)", strings.Join(msgs, "\n"), c.Args().First(), len(msgs)), 1)
	}
	if err := fleet.CheckMarts(spec); err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", c.Args().First(), err), 1)
	}
	if err := fleet.CheckAlerts(spec); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	upkeeps, err := fleet.MartUpkeeps(spec)
	if err != nil {
		return cli.Exit(fmt.Sprintf("%s: %v", c.Args().First(), err), 1)
	}
	if _, err := fmt.Fprintf(c.App.Writer, "%s: ok: %s\n", c.Args().First(), summary(spec)); err != nil {
		return err
	}
	for _, u := range upkeeps {
		how := "kept incrementally: each flush's records are merged into its partial aggregates"
		switch {
		case u.Incremental:
		case u.Partitioned:
			how = "recomputed from the lake for the partitions new records touch (" + u.Reason + ")"
		default:
			how = "recomputed whole from the lake at each write (" + u.Reason + ")"
		}
		if _, err := fmt.Fprintf(c.App.Writer, "  mart %s: %s\n", u.Mart, how); err != nil {
			return err
		}
	}
	return nil
}

func summary(s *pipeline.Spec) string {
	var parts []string
	for _, d := range s.Datasets {
		parts = append(parts, fmt.Sprintf("%s (%d rules, %d transforms)", d.Name, len(d.Rules), len(d.Transforms)))
	}
	out := fmt.Sprintf("pipeline %s: datasets %s; %d lookup table(s); %d mart(s)",
		s.Name, strings.Join(parts, ", "), len(s.Lookups), len(s.Marts))
	if len(s.Alerts) > 0 {
		out += fmt.Sprintf("; %d alert rule(s), %d webhook target(s)", len(s.Alerts), len(s.Webhooks))
	}
	return out
}
