package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
)

func ctlCommand() *cli.Command {
	sub := func(op, usage string) *cli.Command {
		return &cli.Command{
			Name: op, Usage: usage, ArgsUsage: "<step|worker>",
			Flags: commonFlags(
				&cli.StringFlag{Name: "dataset", Usage: "with a step: only its workers of this dataset"},
				&cli.DurationFlag{Name: "timeout", Usage: "how long to collect replies", Value: 2 * time.Second},
			),
			Action: func(c *cli.Context) error { return runCtl(c, op) },
		}
	}
	return &cli.Command{
		Name:  "ctl",
		Usage: "pause, resume or drain a step (all its workers) or one worker, over jf.ctl.*",
		Description: `A target that names a step (validate, transform, aggregate, alert) addresses every
worker of that step; anything else is a worker id (see jetfleet status). A paused
worker finishes what it holds and stops fetching; status shows it paused.`,
		Subcommands: []*cli.Command{
			sub(subjects.CtlPause, "stop fetching; in-flight messages are finished"),
			sub(subjects.CtlResume, "fetch again"),
			sub(subjects.CtlDrain, "pause and wait until nothing is in flight"),
		},
	}
}

func runCtl(c *cli.Context, op string) error {
	if c.NArg() != 1 {
		return usagef(c, "want one target: a step name or a worker id")
	}
	target := c.Args().First()
	if err := subjects.ValidateToken("target", target); err != nil {
		return usagef(c, "%v", err)
	}
	subject := subjects.Control(target)
	_, isStep := subjects.StepByName(target)
	if isStep {
		subject = subjects.ControlStep(target)
	} else if c.IsSet("dataset") {
		return usagef(c, "--dataset applies to a step, and %q is not a step", target)
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(log)
	defer stop()
	nc, err := connectOnce(ctx, c, "ctl", log)
	if err != nil {
		return err
	}
	defer nc.Close()

	inbox := nc.NewInbox() // honours --inbox-prefix
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	body, _ := json.Marshal(subjects.ControlRequest{Op: op, Dataset: c.String("dataset")})
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	wait := c.Duration("timeout")
	if op == subjects.CtlDrain {
		wait += 5 * time.Second // workers answer a drain once they hold nothing
	}
	deadline := time.Now().Add(wait)
	var got []subjects.ControlReply
	for {
		left := time.Until(deadline)
		if left <= 0 || (!isStep && len(got) == 1) {
			break
		}
		m, err := replies.NextMsg(left)
		if err != nil {
			break
		}
		var r subjects.ControlReply
		if json.Unmarshal(m.Data, &r) == nil {
			got = append(got, r)
		}
	}
	if len(got) == 0 {
		return cli.Exit(fmt.Sprintf("no worker answered on %s within %s (is it running? see jetfleet status)", subject, wait), 1)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "WORKER\tSTEP\tDATASET\tSTATE\tIN FLIGHT\tERROR")
	failed := 0
	for _, r := range got {
		if r.Error != "" {
			failed++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", r.Worker, r.Step, r.Dataset, r.State, r.InFlight, r.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("%d of %d worker(s) reported an error", failed, len(got)), 1)
	}
	return nil
}
