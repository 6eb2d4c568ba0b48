package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
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
		Usage: "pause, resume or drain a step (all its workers) or one worker, over jf.ctl.step.*",
		Description: `A target that names a step (validate, transform, aggregate, alert) addresses every
worker of that step; anything else is a worker id (see jetfleet status), whose step
is looked up in the fleet bucket. A paused worker finishes what it holds and stops
fetching; status shows it paused.

A reply counts only if the worker it names also beat on its step's heartbeat subject
(jf.hb.<step>.<worker>), as every worker does after a control request: under a
server config that lets only the step's own user beat and answer there
(jetfleet security conf), nobody else can answer for the step. Other replies are
reported and make ctl exit 1.`,
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
	_, isStep := subjects.StepByName(target)
	if !isStep && c.IsSet("dataset") {
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

	wait := c.Duration("timeout")
	step, worker := target, ""
	if !isStep {
		worker = target
		if step, err = supervisor.StepOfWorker(ctx, nc, worker, wait); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	if op == subjects.CtlDrain {
		wait += 5 * time.Second // workers answer a drain once they hold nothing
	}
	res, err := supervisor.SendControl(ctx, nc, step, worker, subjects.ControlRequest{Op: op, Dataset: c.String("dataset")}, wait)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	subject, got, untrusted := res.Subject, res.Trusted, res.Untrusted
	for _, r := range untrusted {
		fmt.Fprintf(c.App.ErrWriter, "ignored a reply on %s that claims worker %q of step %q: %s\n", subject, r.Worker, r.Step, supervisor.WhyUntrusted(r, step))
	}
	if len(got) == 0 {
		msg := fmt.Sprintf("no worker answered on %s within %s (is it running? see jetfleet status)", subject, wait)
		if len(untrusted) > 0 {
			msg = fmt.Sprintf("no trusted worker answered on %s within %s; %d reply(ies) ignored (ctl trusts a worker it hears beat on %s: may this user subscribe there?)",
				subject, wait, len(untrusted), res.BeatFilter)
		}
		return cli.Exit(msg, 1)
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
	switch {
	case len(untrusted) > 0:
		return cli.Exit(fmt.Sprintf("%d reply(ies) from no worker of %s were ignored (see above): check who may subscribe to %s", len(untrusted), step, subject), 1)
	case failed > 0:
		return cli.Exit(fmt.Sprintf("%d of %d worker(s) reported an error", failed, len(got)), 1)
	}
	return nil
}
