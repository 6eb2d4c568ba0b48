package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/supervisor"
)

func dlqCommand() *cli.Command {
	filter := func(extra ...cli.Flag) []cli.Flag {
		return commonFlags(append([]cli.Flag{
			&cli.StringFlag{Name: "step", Usage: "only dead letters of this step"},
			&cli.StringFlag{Name: "dataset", Usage: "only dead letters of this dataset"},
		}, extra...)...)
	}
	return &cli.Command{
		Name:  "dlq",
		Usage: "list, inspect, replay and purge dead letters (jf.dlq.<step>.<dataset>)",
		Subcommands: []*cli.Command{
			{
				Name: "ls", Usage: "list dead letters, oldest first",
				Flags:  filter(&cli.BoolFlag{Name: "json", Usage: "print JSON"}, &cli.IntFlag{Name: "limit", Usage: "show at most N (0: all)", Value: 1000}),
				Action: dlqAction(dlqList),
			},
			{
				Name: "show", Usage: "show one dead letter with its headers and body", ArgsUsage: "SEQ",
				Flags:  commonFlags(&cli.BoolFlag{Name: "json", Usage: "print JSON"}),
				Action: dlqAction(dlqShow),
			},
			{
				Name: "replay", Usage: "republish dead letters to their original subject (replaying twice changes nothing)",
				Description: `Each dead letter goes back to its original subject with the message id replay:<dlq seq>,
so the server drops a second copy, and is marked replayed in the fleet bucket, so a later
replay skips it (--force replays it anyway). Fix the cause first: a record that fails
again is dead-lettered again.`,
				Flags: filter(
					&cli.Uint64SliceFlag{Name: "seq", Usage: "dead letter `SEQ` to replay (repeatable)"},
					&cli.BoolFlag{Name: "all", Usage: "replay every dead letter matching --step/--dataset"},
					&cli.BoolFlag{Name: "dry-run", Usage: "show what would be replayed"},
					&cli.BoolFlag{Name: "force", Usage: "replay dead letters replayed before"},
					&cli.BoolFlag{Name: "json", Usage: "print JSON"},
				),
				Action: dlqAction(dlqReplay),
			},
			{
				Name: "purge", Usage: "delete dead letters (asks first unless --yes)",
				Flags:  filter(&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask"}),
				Action: dlqAction(dlqPurge),
			},
		},
	}
}

func dlqAction(actionFunc func(ctx context.Context, c *cli.Context, js jetstream.JetStream) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		sess, err := openSession(c, "dlq")
		if err != nil {
			return err
		}
		defer sess.Close()
		js := sess.js
		ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
		defer cancel()
		return actionFunc(ctx, c, js)
	}
}

func dlqFilter(c *cli.Context) supervisor.DLQFilter {
	return supervisor.DLQFilter{Step: c.String("step"), Dataset: c.String("dataset"), Limit: c.Int("limit")}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dlqList(ctx context.Context, c *cli.Context, js jetstream.JetStream) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	dls, err := supervisor.ListDeadLetters(ctx, js, dlqFilter(c))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if c.Bool("json") {
		if dls == nil {
			dls = []supervisor.DeadLetter{}
		}
		for i := range dls {
			dls[i].Header = nil
		}
		return printJSON(c.App.Writer, dls)
	}
	if len(dls) == 0 {
		_, err := fmt.Fprintln(c.App.Writer, "no dead letters")
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tWHEN\tSTEP\tDATASET\tFROM\tTRIES\tREPLAYED\tREASON")
	for _, d := range dls {
		replayed := ""
		if d.Replayed != nil {
			replayed = "yes"
		}
		from := fmt.Sprintf("%s#%d", d.OrigStream, d.OrigSeq)
		if d.RecordIndex >= 0 {
			from += fmt.Sprintf("[%d]", d.RecordIndex)
		}
		reason := d.Reason
		if d.Truncated {
			reason = fmt.Sprintf("[truncated, %d bytes] %s", d.OrigSize, reason)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.Seq, d.Time.Local().Format("01-02 15:04:05"), d.Step, d.Dataset,
			from, d.Deliveries, replayed, trim(reason, 80))
	}
	return tw.Flush()
}

func trim(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

func dlqShow(ctx context.Context, c *cli.Context, js jetstream.JetStream) error {
	if c.NArg() != 1 {
		return usagef(c, "want one dead letter sequence (see jetfleet dlq ls)")
	}
	seq, err := strconv.ParseUint(c.Args().First(), 10, 64)
	if err != nil || seq == 0 {
		return usagef(c, "bad sequence %q", c.Args().First())
	}
	d, err := supervisor.GetDeadLetter(ctx, js, seq)
	if errors.Is(err, supervisor.ErrNotFound) {
		return cli.Exit(fmt.Sprintf("no dead letter %d", seq), 1)
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	// A truncated dead letter is only the head of its record: say whether
	// the whole one can still be had from its stream.
	var retained *bool
	var gone error
	if d.Truncated {
		_, gone = supervisor.Original(ctx, js, *d)
		if gone != nil && !errors.Is(gone, supervisor.ErrOriginalGone) {
			return cli.Exit(gone.Error(), 1)
		}
		retained = new(bool)
		*retained = gone == nil
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, struct {
			*supervisor.DeadLetter
			OriginalRetained *bool  `json:"original_retained,omitempty"`
			Body             string `json:"body"`
		}{d, retained, string(d.Data)})
	}
	w := c.App.Writer
	truncated := ""
	if d.Truncated {
		truncated = fmt.Sprintf("body truncated to %d of %d bytes to fit the server's max payload; ", len(d.Data), d.OrigSize)
		if gone == nil {
			truncated += fmt.Sprintf("the whole record is %s seq %d, still retained (jetfleet dlq replay --seq %d sends it whole)", d.OrigStream, d.OrigSeq, d.Seq)
		} else {
			truncated += fmt.Sprintf("the whole record (%s seq %d) is no longer retained: only this head is left", d.OrigStream, d.OrigSeq)
		}
	}
	fmt.Fprintf(w, "dead letter %d on %s at %s\n", d.Seq, d.Subject, d.Time.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "reason:     %s\n", d.Reason)
	fmt.Fprintf(w, "from:       %s seq %d (%s)\n", d.OrigStream, d.OrigSeq, d.OrigSubject)
	if truncated != "" {
		fmt.Fprintf(w, "truncated:  %s\n", truncated)
	}
	fmt.Fprintf(w, "deliveries: %d by %s (consumer %s)\n", d.Deliveries, d.Worker, d.Consumer)
	if d.TraceID != "" {
		fmt.Fprintf(w, "trace:      %s\n", d.TraceID)
	}
	if d.Replayed != nil {
		fmt.Fprintf(w, "replayed:   %s\n", d.Replayed.Local().Format(time.RFC3339))
	}
	fmt.Fprintln(w, "headers:")
	keys := make([]string, 0, len(d.Header))
	for k := range d.Header {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, strings.Join(d.Header[k], ", "))
	}
	fmt.Fprintln(w, "body:")
	if _, err = fmt.Fprintf(w, "%s\n", d.Data); err != nil || truncated == "" {
		return err
	}
	// Repeated below the body, which may be megabytes long.
	_, err = fmt.Fprintf(w, "(truncated: %s)\n", truncated)
	return err
}

func dlqReplay(ctx context.Context, c *cli.Context, js jetstream.JetStream) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q (use --seq N)", c.Args().First())
	}
	seqs := c.Uint64Slice("seq")
	if len(seqs) == 0 && !c.Bool("all") {
		return usagef(c, "say which: --seq N (repeatable) or --all")
	}
	if len(seqs) > 0 && c.Bool("all") {
		return usagef(c, "--seq and --all exclude each other")
	}
	f := dlqFilter(c)
	f.Limit = 0
	res, err := supervisor.Replay(ctx, js, supervisor.ReplayOptions{DLQFilter: f, Seqs: seqs, All: c.Bool("all"), DryRun: c.Bool("dry-run"), Force: c.Bool("force")})
	if errors.Is(err, supervisor.ErrNotFound) {
		return cli.Exit(err.Error(), 1)
	}
	if c.Bool("json") && err == nil {
		if res == nil {
			res = []supervisor.ReplayResult{}
		}
		return printJSON(c.App.Writer, res)
	}
	counts := map[string]int{}
	for _, r := range res {
		counts[r.Outcome]++
		fmt.Fprintf(c.App.Writer, "%d -> %s: %s\n", r.Seq, r.Subject, strings.ReplaceAll(r.Outcome, "_", " "))
	}
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	_, werr := fmt.Fprintf(c.App.Writer, "replayed %d, already there %d, skipped (replayed before) %d, dry run %d\n",
		counts[supervisor.ReplayPublished], counts[supervisor.ReplayDuplicate], counts[supervisor.ReplaySkipped], counts[supervisor.ReplayDryRun])
	return werr
}

func dlqPurge(ctx context.Context, c *cli.Context, js jetstream.JetStream) error {
	if c.NArg() > 0 {
		return usagef(c, "unexpected argument %q", c.Args().First())
	}
	f := dlqFilter(c)
	what := "ALL dead letters"
	if f.Step != "" || f.Dataset != "" {
		what = fmt.Sprintf("the dead letters of step %q dataset %q", or(f.Step, "*"), or(f.Dataset, "*"))
	}
	if !c.Bool("yes") {
		fmt.Fprintf(c.App.ErrWriter, "Delete %s? This cannot be undone. [y/N] ", what)
		reader := c.App.Reader
		if reader == nil {
			reader = os.Stdin
		}
		line, _ := bufio.NewReader(reader).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return cli.Exit("not purged", 1)
		}
	}
	n, err := supervisor.PurgeDeadLetters(ctx, js, f)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	_, err = fmt.Fprintf(c.App.Writer, "purged %d dead letter(s)\n", n)
	return err
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
