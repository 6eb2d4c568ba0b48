package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the shop pipeline end to end on this machine, with its baselines, and verify the marts",
		Description: `Runs the whole shop pipeline (validate, transform, DuckDB aggregate) in this process on an
embedded NATS server (or --nats), publishes --events generated orders, waits until the marts
hold them, and prints publish and end-to-end rates, CPU and memory, next to two baselines
measured in the same run: a raw nats.go hop on the same server and a DuckDB batch job.

   jetfleet bench --mode record --events 20000
   jetfleet bench --mode bulk --events 1000000 --json bulk.json

Exits 1 unless the marts equal the batch result over the clean records and every
published record is accounted for (verified: yes).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "mode", Usage: "record (one record per message) or bulk (NDJSON chunks)", Value: string(bench.ModeRecord)},
			&cli.IntFlag{Name: "events", Usage: "orders to publish", Value: 100000},
			&cli.IntFlag{Name: "bulk-size", Usage: "records per message in bulk mode", Value: 100},
			&cli.Uint64Flag{Name: "seed", Usage: "generator seed", Value: 1},
			&cli.Float64Flag{Name: "invalid", Usage: "share of invalid orders", Value: 0.05},
			&cli.Float64Flag{Name: "duplicates", Usage: "share of duplicate orders", Value: 0.02},
			&cli.StringFlag{Name: "nats", Usage: "run against this server (its stage streams must be empty) instead of an embedded one"},
			&cli.StringFlag{Name: "data-dir", Usage: "where the aggregator's state and marts go (default: a temporary dir, removed after)"},
			memoryLimitFlag(),
			&cli.StringFlag{Name: "json", Usage: "also write every figure to this file as JSON"},
			&cli.DurationFlag{Name: "timeout", Usage: "bound on the wait for the fleet to drain", Value: 10 * time.Minute},
		}, logFlags()...),
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	dataDir := c.String("data-dir")
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "jetfleet-bench-"); err != nil {
			return cli.Exit(err.Error(), 1)
		}
		defer os.RemoveAll(dataDir)
	}
	ctx, stop := signalContext(log)
	defer stop()

	res, err := bench.Run(ctx, bench.Config{
		Mode:           bench.Mode(c.String("mode")),
		Events:         c.Int("events"),
		BulkSize:       c.Int("bulk-size"),
		Seed:           c.Uint64("seed"),
		InvalidShare:   c.Float64("invalid"),
		DuplicateShare: c.Float64("duplicates"),
		NatsURL:        c.String("nats"),
		DataDir:        dataDir,
		MemoryLimit:    c.String("memory-limit"),
		Timeout:        c.Duration("timeout"),
		Version:        version,
		Logger:         log,
	})
	if errors.Is(err, bench.ErrInvalidConfig) {
		return usagef(c, "%v", err)
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("bench: %v", err), 1)
	}
	if err := res.WriteTable(c.App.Writer); err != nil {
		return err
	}
	if path := c.String("json"); path != "" {
		if err := res.WriteJSON(path); err != nil {
			return cli.Exit(fmt.Sprintf("bench: --json: %v", err), 1)
		}
	}
	if !res.Verified {
		return cli.Exit("bench: not verified: the marts or the record counts are wrong (see mismatch lines)", 1)
	}
	return nil
}
