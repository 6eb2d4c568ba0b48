package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
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

   jetfleet bench --mode record --events 100000
   jetfleet bench --mode bulk --events 1000000 --json bulk.json
   jetfleet bench --rate 5000 --duration 1m --report bench/results     latency at an offered load
   jetfleet bench --workers validate=2 --workers transform=2           more replicas of a step
   jetfleet bench --rate 5000 --duration 10m --report bench/results    soak: memory and lag over time

--rate publishes open loop (each record at its scheduled time, latency measured from then);
without it the publisher goes as fast as the server takes records. --report writes a
markdown report with a latency histogram (SVG) and, for timed runs, memory and lag over time.

Exits 1 unless the marts equal the batch result over the clean records and every
published record is accounted for (verified: yes).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "mode", Usage: "record (one record per message) or bulk (NDJSON chunks)", Value: string(bench.ModeRecord)},
			&cli.IntFlag{Name: "events", Usage: "orders to publish (default 100000 unless --duration is set)"},
			&cli.DurationFlag{Name: "duration", Usage: "publish for this long instead of a number of events (soak runs)"},
			&cli.Float64Flag{Name: "rate", Usage: "offered load in records/s, open loop (0: as fast as possible)"},
			&cli.StringSliceFlag{Name: "workers", Usage: "replicas of a step, `STEP=N` (validate, transform); repeatable"},
			&cli.StringFlag{Name: "report", Usage: "write a markdown report and its pictures into this `DIR` (e.g. bench/results)"},
			&cli.StringFlag{Name: "generate", Usage: "only write --events generated orders as NDJSON to `FILE` (- for stdout), for jetfleet publish or other tools, and exit"},
			&cli.IntFlag{Name: "bulk-size", Usage: "records per message in bulk mode", Value: 100},
			&cli.Uint64Flag{Name: "seed", Usage: "generator seed", Value: 1},
			&cli.Float64Flag{Name: "invalid", Usage: "share of invalid orders", Value: 0.05},
			&cli.Float64Flag{Name: "duplicates", Usage: "share of duplicate orders", Value: 0.02},
			&cli.StringFlag{Name: "nats", Usage: "run against this server (its stage streams must be empty) instead of an embedded one"},
			&cli.StringFlag{Name: "data-dir", Usage: "where the aggregator's state and marts go (default: a temporary dir, removed after)"},
			memoryLimitFlag(),
			&cli.StringFlag{Name: "json", Usage: "also write every figure to this file as JSON"},
			&cli.DurationFlag{Name: "timeout", Usage: "bound on the wait for the fleet to drain", Value: 10 * time.Minute},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the fleet run (publish to idle) to this file (go tool pprof)"},
			&cli.StringFlag{Name: "memprofile", Usage: "write a Go heap profile, taken when publishing ends, to this file (go tool pprof); DuckDB's memory is not in it"},
		}, logFlags()...),
		Action: runBench,
	}
}

func runBench(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	if path := c.String("generate"); path != "" {
		return generateOrders(c, path)
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
	workers, err := parseWorkers(c.StringSlice("workers"))
	if err != nil {
		return usagef(c, "%v", err)
	}
	events := c.Int("events")
	if events == 0 && c.Duration("duration") == 0 {
		events = 100000
	}
	ctx, stop := signalContext(log)
	defer stop()

	var bar *benchProgress
	if isatty.IsTerminal(os.Stderr.Fd()) {
		bar = &benchProgress{w: os.Stderr}
		defer bar.clear()
	}
	res, err := bench.Run(ctx, bench.Config{
		Mode:           bench.Mode(c.String("mode")),
		Events:         events,
		Duration:       c.Duration("duration"),
		Rate:           c.Float64("rate"),
		Workers:        workers,
		ProgressFunc:   bar.show,
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
		CPUProfile:     c.String("cpuprofile"),
		MemProfile:     c.String("memprofile"),
	})
	if errors.Is(err, bench.ErrInvalidConfig) {
		return usagef(c, "%v", err)
	}
	if err != nil {
		return cli.Exit(fmt.Sprintf("bench: %v", err), 1)
	}
	bar.clear()
	if err := res.WriteTable(c.App.Writer); err != nil {
		return err
	}
	if path := c.String("json"); path != "" {
		if err := res.WriteJSON(path); err != nil {
			return cli.Exit(fmt.Sprintf("bench: --json: %v", err), 1)
		}
	}
	if dir := c.String("report"); dir != "" {
		path, err := res.WriteReport(dir)
		if err != nil {
			return cli.Exit(fmt.Sprintf("bench: --report: %v", err), 1)
		}
		fmt.Fprintf(c.App.Writer, "report             %s\n", path)
	}
	if !res.Verified {
		return cli.Exit("bench: not verified: the marts or the record counts are wrong (see mismatch lines)", 1)
	}
	return nil
}

// parseWorkers reads --workers STEP=N flags.
func parseWorkers(flags []string) (map[string]int, error) {
	out := map[string]int{}
	for _, f := range flags {
		step, n, ok := strings.Cut(f, "=")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 1 {
			return nil, fmt.Errorf("--workers %q: want STEP=N with N >= 1, e.g. validate=2", f)
		}
		out[strings.TrimSpace(step)] = count
	}
	return out, nil
}

// benchProgress draws one status line on a terminal while a run goes.
type benchProgress struct {
	mu    sync.Mutex
	w     io.Writer
	drawn bool
}

func (b *benchProgress) show(p bench.Progress) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	done := 0.0
	switch {
	case p.Target > 0:
		done = float64(p.Committed) / float64(p.Target)
	case p.Duration > 0:
		done = min(p.Elapsed.Seconds()/p.Duration.Seconds(), 1)
	}
	done = min(max(done, 0), 1)
	filled := int(done * 20)
	fmt.Fprintf(b.w, "\r\033[K[%s%s] %3.0f%% %-10s %6.1fs  published %d  committed %d  lag %d",
		strings.Repeat("=", filled), strings.Repeat(" ", 20-filled), done*100, p.Phase, p.Elapsed.Seconds(), p.Published, p.Committed, p.Lag)
	b.drawn = true
}

func (b *benchProgress) clear() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
}

// generateOrders writes the generator's orders, the same a run with the
// same flags publishes, as NDJSON.
func generateOrders(c *cli.Context, path string) error {
	events := c.Int("events")
	if events <= 0 {
		events = 100000
	}
	out := c.App.Writer
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return cli.Exit(fmt.Sprintf("bench: --generate: %v", err), 1)
		}
		defer f.Close()
		out = f
	}
	w := bufio.NewWriter(out)
	gen := bench.NewOrderGenerator(c.Uint64("seed"), c.Float64("invalid"), c.Float64("duplicates"))
	for range events {
		line, _ := gen.Next()
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return cli.Exit(fmt.Sprintf("bench: --generate: %v", err), 1)
	}
	return nil
}
