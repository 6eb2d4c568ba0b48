package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/transform"
)

func lookupCommand() *cli.Command {
	return &cli.Command{
		Name:  "lookup",
		Usage: "manage lookup tables (JetStream KV buckets the transform step enriches from)",
		Subcommands: []*cli.Command{{
			Name:      "load",
			Usage:     "load lookup tables from the pipeline file (inline rows or CSV) into KV",
			ArgsUsage: "[TABLE...]",
			Description: `Replaces the content of each named table (every table of the pipeline when none is
named) with its rows: inline rows from the pipeline file, or its CSV file, or --csv.
Keys no longer present are deleted. Running transform workers pick the change up
within moments; no restart is needed.

   jetfleet lookup load --pipeline examples/iot/pipeline.yaml
   jetfleet lookup load --pipeline pipeline.yaml --csv rates-today.csv fx`,
			Flags: commonFlags(
				&cli.StringFlag{Name: "pipeline", Aliases: []string{"p"}, Usage: "pipeline file (default: the built-in shop pipeline)", EnvVars: []string{"JETFLEET_PIPELINE"}},
				&cli.StringFlag{Name: "csv", Usage: "read the one named TABLE from this CSV file (header row, the table's key column) instead"},
				&cli.IntFlag{Name: "replicas", Usage: "KV replicas when a bucket is created (3 on a cluster)", Value: 1},
			),
			Action: runLookupLoad,
		}},
	}
}

func runLookupLoad(c *cli.Context) error {
	spec := examples.Shop()
	if p := c.String("pipeline"); p != "" {
		var err error
		if spec, err = pipeline.Load(p); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	tables := spec.Lookups
	if c.NArg() > 0 {
		tables = nil
		for _, name := range c.Args().Slice() {
			l := spec.Lookup(name)
			if l == nil {
				return usagef(c, "pipeline %s has no lookup table %q", spec.Name, name)
			}
			tables = append(tables, l)
		}
	}
	if c.String("csv") != "" && c.NArg() != 1 {
		return usagef(c, "--csv needs exactly one TABLE")
	}
	if len(tables) == 0 {
		return cli.Exit(fmt.Sprintf("pipeline %s has no lookup tables", spec.Name), 1)
	}
	// Read every table before touching KV, so a bad file changes nothing.
	rows := make([][]map[string]any, len(tables))
	for i, l := range tables {
		var err error
		if path := c.String("csv"); path != "" {
			f, ferr := os.Open(path)
			if ferr != nil {
				return cli.Exit(ferr.Error(), 1)
			}
			rows[i], err = l.ReadCSV(f)
			_ = f.Close()
		} else {
			rows[i], err = l.ReadRows()
		}
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	sess, err := openSession(c, "lookup load")
	if err != nil {
		return err
	}
	defer sess.Close()
	ctx, js := sess.ctx, sess.js
	for i, l := range tables {
		res, err := transform.LoadTable(ctx, js, l, rows[i], c.Int("replicas"))
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		if _, err := fmt.Fprintf(c.App.Writer, "%s: %d rows loaded, %d stale keys deleted\n", l.Name, res.Put, res.Deleted); err != nil {
			return err
		}
	}
	return nil
}
