package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/supervisor"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show what the fleet is doing (works without a supervisor: reads JetStream directly)",
		Description: `One screen: a headline (healthy, or what is wrong), then per step and dataset the
workers, lag (pending), in flight, redelivered and dead letters, then the marts.

  jetfleet status                 the screen once
  jetfleet status --watch         refresh in place every --interval
  jetfleet status --json          the same as a stable JSON document (docs/status.md)
  jetfleet status --wait-idle 60s block until no uploaded file waits, every consumer is drained,
                                  nothing is in flight and the marts flushed; exit 1 naming what
                                  is busy on timeout`,
		Flags: commonFlags(
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "refresh the screen in place until interrupted"},
			&cli.DurationFlag{Name: "interval", Usage: "refresh interval of --watch", Value: 2 * time.Second},
			&cli.DurationFlag{Name: "wait-idle", Usage: "wait up to `DURATION` for the fleet to drain, then exit 0 (1 on timeout)"},
		),
		Action: runStatus,
	}
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	sess, err := openSession(c, "status")
	if err != nil {
		return err
	}
	defer sess.Close()
	ctx, js := sess.ctx, sess.js

	if d := c.Duration("wait-idle"); c.IsSet("wait-idle") {
		if d <= 0 {
			return usagef(c, "--wait-idle needs a positive duration")
		}
		wctx, cancel := context.WithTimeoutCause(ctx, d, context.DeadlineExceeded)
		defer cancel()
		st, err := supervisor.WaitIdle(wctx, js, supervisor.WaitIdleOptions{})
		if err != nil {
			if errors.Is(err, supervisor.ErrNotIdle) {
				return cli.Exit(fmt.Sprintf("not idle after %s: %s", d, strings.TrimPrefix(err.Error(), supervisor.ErrNotIdle.Error()+": ")), 1)
			}
			return cli.Exit(err.Error(), 1)
		}
		return printStatus(c, st)
	}

	if c.Bool("watch") {
		return watchStatus(ctx, c, js)
	}
	st, err := snapshot(ctx, js)
	if err != nil {
		return err
	}
	return printStatus(c, st)
}

func snapshot(ctx context.Context, js jetstream.JetStream) (*supervisor.Status, error) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	st, err := supervisor.Snapshot(sctx, js)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("status: %v", err), 1)
	}
	return st, nil
}

func printStatus(c *cli.Context, st *supervisor.Status) error {
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return supervisor.RenderText(c.App.Writer, st, supervisor.TextOptions{})
}

func watchStatus(ctx context.Context, c *cli.Context, js jetstream.JetStream) error {
	tty := isatty.IsTerminal(os.Stdout.Fd())
	t := time.NewTicker(max(c.Duration("interval"), 200*time.Millisecond))
	defer t.Stop()
	for {
		st, err := snapshot(ctx, js)
		if ctx.Err() != nil {
			return nil
		}
		if tty {
			fmt.Fprint(c.App.Writer, "\x1b[H\x1b[2J") // home and clear: redraw in place
		}
		if err != nil {
			fmt.Fprintln(c.App.Writer, err)
		} else if err := printStatus(c, st); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
