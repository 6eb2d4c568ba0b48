package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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
		if step, err = stepOfWorker(ctx, nc, worker, wait); err != nil {
			return cli.Exit(err.Error(), 1)
		}
	}
	subject := subjects.ControlStep(step)
	if worker != "" {
		subject = subjects.Control(step, worker)
	}

	// Beats first: a worker beats after each control request, and only
	// the step's own user may beat on its subject, so a beat vouches for
	// the reply that names the same worker.
	beatFilter := subjects.Heartbeat(step, "*")
	if worker != "" {
		beatFilter = subjects.Heartbeat(step, worker)
	}
	beats, err := nc.SubscribeSync(beatFilter)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	inbox := nc.NewInbox() // honours --inbox-prefix
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if err := nc.Flush(); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	body, _ := json.Marshal(subjects.ControlRequest{Op: op, Dataset: c.String("dataset")})
	if err := nc.PublishRequest(subject, inbox, body); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if op == subjects.CtlDrain {
		wait += 5 * time.Second // workers answer a drain once they hold nothing
	}
	got, untrusted := collectReplies(replies, beats, step, worker, time.Now().Add(wait))
	for _, r := range untrusted {
		fmt.Fprintf(c.App.ErrWriter, "ignored a reply on %s that claims worker %q of step %q: %s\n", subject, r.Worker, r.Step, whyUntrusted(r, step))
	}
	if len(got) == 0 {
		msg := fmt.Sprintf("no worker answered on %s within %s (is it running? see jetfleet status)", subject, wait)
		if len(untrusted) > 0 {
			msg = fmt.Sprintf("no trusted worker answered on %s within %s; %d reply(ies) ignored (ctl trusts a worker it hears beat on %s: may this user subscribe there?)",
				subject, wait, len(untrusted), beatFilter)
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

// collectReplies reads replies and beats until deadline (for one worker:
// until its reply is vouched for) and splits the replies into trusted and
// untrusted ones. A reply is trusted when it names step (and worker, if
// set) and a beat came from that worker on jf.hb.<step>.<worker>.
func collectReplies(replies, beats *nats.Subscription, step, worker string, deadline time.Time) (trusted, untrusted []subjects.ControlReply) {
	beaten := map[string]bool{}
	var pending []subjects.ControlReply
	settle := func() {
		keep := pending[:0]
		for _, r := range pending {
			if beaten[r.Worker] && r.Step == step && (worker == "" || r.Worker == worker) {
				trusted = append(trusted, r)
			} else {
				keep = append(keep, r)
			}
		}
		pending = keep
	}
	for time.Now().Before(deadline) && (worker == "" || len(trusted) == 0) {
		// Beats and replies come on two subscriptions; take what has come
		// on either, then wait a little on the replies.
		for {
			m, err := beats.NextMsg(0)
			if err != nil {
				break
			}
			var b subjects.Beat
			if json.Unmarshal(m.Data, &b) == nil {
				if p, err := subjects.Parse(m.Subject); err == nil && p.Worker == b.Worker {
					beaten[b.Worker] = true
				}
			}
		}
		m, err := replies.NextMsg(min(50*time.Millisecond, time.Until(deadline)))
		if err == nil {
			var r subjects.ControlReply
			if json.Unmarshal(m.Data, &r) == nil {
				pending = append(pending, r)
			}
		} else if !errors.Is(err, nats.ErrTimeout) {
			break
		}
		settle()
	}
	return trusted, pending
}

func whyUntrusted(r subjects.ControlReply, step string) string {
	if r.Step != step {
		return "not a worker of " + step
	}
	return fmt.Sprintf("no heartbeat from it on %s", subjects.Heartbeat(step, r.Worker))
}

// stepOfWorker finds the step of a worker: from its live key
// hb.<step>.<worker> in the fleet bucket, else from its next heartbeat.
func stepOfWorker(ctx context.Context, nc *nats.Conn, worker string, wait time.Duration) (string, error) {
	if js, err := jetstream.New(nc); err == nil {
		lctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if kv, err := js.KeyValue(lctx, subjects.FleetBucket); err == nil {
			if keys, err := kv.ListKeysFiltered(lctx, subjects.KeyWorker("*", worker)); err == nil {
				for k := range keys.Keys() {
					if parts := strings.Split(k, "."); len(parts) == 3 {
						_ = keys.Stop()
						return parts[1], nil
					}
				}
			}
		}
	}
	// No supervisor keeps the bucket: wait for a beat (every few seconds).
	sub, err := nc.SubscribeSync(subjects.Heartbeat("*", worker))
	if err != nil {
		return "", err
	}
	defer func() { _ = sub.Unsubscribe() }()
	bctx, cancel := context.WithTimeout(ctx, wait+6*time.Second) // workers beat every 5s
	defer cancel()
	m, err := sub.NextMsgWithContext(bctx)
	if err != nil {
		return "", fmt.Errorf("worker %s is not in the fleet (no key %s in %s, no heartbeat on %s): see jetfleet status",
			worker, subjects.KeyWorker("<step>", worker), subjects.FleetBucket, subjects.Heartbeat("*", worker))
	}
	p, err := subjects.Parse(m.Subject)
	if err != nil {
		return "", err
	}
	return p.Step, nil
}
