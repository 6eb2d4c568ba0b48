package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/marts"
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

With --data-dir, the schema is also checked against the lake the data dir holds
(written by the pipeline's previous version): a column whose type changed, or a
column dropped while a mart still uses it, is refused before anything runs; an
added column is fine (older lake files read it as NULL).

   jetfleet pipeline check examples/shop/pipeline.yaml
   jetfleet pipeline check --data-dir .jetfleet examples/shop/pipeline.yaml`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "data-dir", Usage: "also check the schema against the lake of this data dir"},
				},
				Action: runPipelineCheck,
			},
			pipelineTestCommand(),
			{
				Name:  "default",
				Usage: "print the built-in shop pipeline (a starting point for your own)",
				Action: func(c *cli.Context) error {
					_, err := c.App.Writer.Write(examples.ShopPipeline)
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
	if dir := c.String("data-dir"); dir != "" {
		if err := checkAgainstLake(spec, dir); err != nil {
			return cli.Exit(err.Error(), 1)
		}
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

// checkAgainstLake checks spec's schemas against the lakes of dataDir.
func checkAgainstLake(spec *pipeline.Spec, dataDir string) error {
	if _, err := os.Stat(dataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	ms, err := marts.ReadManifests(dataDir)
	if err != nil {
		return fmt.Errorf("--data-dir %s: %w", dataDir, err)
	}
	var msgs []string
	for _, m := range ms {
		ds := spec.Dataset(m.Dataset)
		if m.Kind != marts.KindLake || ds == nil {
			continue
		}
		// The lake's own two columns (event date, month partition)
		// follow the schema's.
		lakeCols := m.Columns
		if n := len(lakeCols); n >= 2 && slices.Contains(m.PartitionBy, lakeCols[n-1].Name) {
			lakeCols = lakeCols[:n-2]
		}
		var cols []pipeline.Column
		for _, c := range lakeCols {
			cols = append(cols, pipeline.Column{Name: c.Name, Type: c.Type})
		}
		for _, e := range pipeline.CheckSchemaChange(spec, ds, cols) {
			msgs = append(msgs, e.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("%s\n%s: %d problem(s) against the lake of %s", strings.Join(msgs, "\n"), spec.File, len(msgs), dataDir)
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
