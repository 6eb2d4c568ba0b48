package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/marts/query"
)

func profileCommand() *cli.Command {
	return &cli.Command{
		Name:      "profile",
		Usage:     "profile a dataset's lake or a mart: per column type, min, max, distinct count, nulls",
		ArgsUsage: "DATASET|MART",
		Description: `Runs DuckDB SUMMARIZE over the dataset's clean-record lake (or a mart) under --data-dir:
for every column its type, min, max, approximate distinct count, average, quartiles, row count
and the percentage of NULLs (completeness).

   jetfleet profile orders
   jetfleet profile --format json daily_sales`,
		Flags: append([]cli.Flag{
			dataDirFlag(), formatFlag(),
			&cli.StringFlag{Name: "memory-limit", Usage: "DuckDB memory limit", Value: "512MB"},
		}, logFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef(c, "name one dataset or mart")
			}
			format, err := query.ParseFormat(c.String("format"))
			if err != nil {
				return usagef(c, "%v", err)
			}
			dataDir := c.String("data-dir")
			if _, err := os.Stat(dataDir); err != nil {
				return cli.Exit(fmt.Sprintf("data dir %s: %v (set --data-dir or JETFLEET_DATA_DIR)", dataDir, err), 1)
			}
			ctx, cancel := context.WithCancel(c.Context)
			defer cancel()
			e, err := query.Open(ctx, query.Config{DataDir: dataDir, MemoryLimit: c.String("memory-limit")})
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			defer e.Close()
			res, err := e.Profile(ctx, c.Args().First())
			if err != nil {
				return cli.Exit(err.Error(), 1)
			}
			return res.Write(c.App.Writer, format)
		},
	}
}
