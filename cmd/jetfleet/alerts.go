package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/alert"
)

func alertsCommand() *cli.Command {
	flags := func(extra ...cli.Flag) []cli.Flag {
		return commonFlags(append([]cli.Flag{
			&cli.StringFlag{Name: "since", Usage: "only alerts stored since `D` ago (10m, 24h) or since a time (RFC 3339)"},
			&cli.StringFlag{Name: "rule", Usage: "only alerts of this rule"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON (ls: one array; tail: one object per line)"},
		}, extra...)...)
	}
	return &cli.Command{
		Name:  "alerts",
		Usage: "list or follow alerts (jf.alert.<rule>, stream JF_ALERTS)",
		Description: `Alerts are fired by the rules of a pipeline's alerts section (docs/alerts.md).

   jetfleet alerts ls --since 1h
   jetfleet alerts ls --rule big_order --json
   jetfleet alerts tail`,
		Subcommands: []*cli.Command{
			{
				Name: "ls", Usage: "list stored alerts, oldest first",
				Flags:  flags(&cli.IntFlag{Name: "limit", Usage: "show at most the last N (0: all)", Value: 1000}),
				Action: alertsList,
			},
			{
				Name: "tail", Usage: "print alerts as they fire until interrupted (--since replays older ones first)",
				Flags:  flags(),
				Action: alertsTail,
			},
		},
	}
}

// storedAlert is an alert with where it is stored.
type storedAlert struct {
	Seq    uint64    `json:"seq"`
	Stored time.Time `json:"stored"`
	alert.Alert
}

// alertsConsumer opens an ordered consumer on the alerts --rule and
// --since select; without --since, tail starts at new alerts.
func alertsConsumer(ctx context.Context, c *cli.Context, js jetstream.JetStream, follow bool) (jetstream.Consumer, error) {
	filter := subjects.AllAlerts
	if r := c.String("rule"); r != "" {
		if err := subjects.ValidateToken("rule", r); err != nil {
			return nil, usagef(c, "--rule: %v", err)
		}
		filter = subjects.Alert(r)
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if follow {
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	if s := c.String("since"); s != "" {
		start, err := parseSince(s, time.Now())
		if err != nil {
			return nil, usagef(c, "--since %q: want a duration such as 30m or an RFC 3339 time", s)
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	cons, err := js.OrderedConsumer(ctx, subjects.StreamAlerts, cfg)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, cli.Exit("no alerts stream (JF_ALERTS) on this server: no alert step has run yet", 1)
	}
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("read %s: %v", subjects.StreamAlerts, err), 1)
	}
	return cons, nil
}

func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, s)
}

func decodeAlert(m jetstream.Msg) storedAlert {
	var sa storedAlert
	if meta, err := m.Metadata(); err == nil {
		sa.Seq, sa.Stored = meta.Sequence.Stream, meta.Timestamp.UTC()
	}
	if err := json.Unmarshal(m.Data(), &sa.Alert); err != nil || sa.Rule == "" {
		// Not one of ours (published by hand): show what we can.
		sa.Alert = alert.Alert{Message: "not an alert: " + strings.TrimSpace(string(m.Data()))}
		if p, err := subjects.Parse(m.Subject()); err == nil {
			sa.Rule = p.Rule
		}
	}
	return sa
}

func alertsList(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "takes no arguments, got %q", c.Args().First())
	}
	sess, err := openSession(c, "alerts")
	if err != nil {
		return err
	}
	defer sess.Close()
	ctx, cancel := context.WithTimeout(sess.ctx, 60*time.Second)
	defer cancel()
	cons, err := alertsConsumer(ctx, c, sess.js, false)
	if err != nil {
		return err
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return cli.Exit(fmt.Sprintf("read %s: %v", subjects.StreamAlerts, err), 1)
	}
	out := []storedAlert{}
	for n := info.NumPending; n > 0; n-- {
		m, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return cli.Exit(fmt.Sprintf("read %s: %v", subjects.StreamAlerts, err), 1)
		}
		out = append(out, decodeAlert(m))
	}
	if limit := c.Int("limit"); limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	w := c.App.Writer
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(out) == 0 {
		_, err := fmt.Fprintln(w, "no alerts")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tRULE\tSEVERITY\tKEY\tSUPPRESSED\tMESSAGE")
	for _, a := range out {
		writeAlertRow(tw, a)
	}
	return tw.Flush()
}

func writeAlertRow(w io.Writer, a storedAlert) {
	at := a.Time
	if at.IsZero() {
		at = a.Stored
	}
	key := a.Key
	if key == "" {
		key = "-"
	}
	fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", a.Seq, at.UTC().Format("2006-01-02 15:04:05"), a.Rule, a.Severity, key, a.Suppressed, oneLineText(a.Message, 120))
}

func oneLineText(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

func alertsTail(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef(c, "takes no arguments, got %q", c.Args().First())
	}
	sess, err := openSession(c, "alerts")
	if err != nil {
		return err
	}
	defer sess.Close()
	cons, err := alertsConsumer(sess.ctx, c, sess.js, true)
	if err != nil {
		return err
	}
	w := c.App.Writer
	enc := json.NewEncoder(w)
	for {
		m, err := cons.Next(jetstream.FetchContext(sess.ctx))
		if err != nil {
			if sess.ctx.Err() != nil {
				return nil // interrupted: the normal end of a tail
			}
			return cli.Exit(fmt.Sprintf("read %s: %v", subjects.StreamAlerts, err), 1)
		}
		a := decodeAlert(m)
		if c.Bool("json") {
			if err := enc.Encode(a); err != nil {
				return err
			}
			continue
		}
		writeAlertRow(w, a)
	}
}
