package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// waitRunning waits until every worker of fl fetches, so the banner comes
// once the fleet is ready rather than while it starts; after timeout it
// reports ready anyway (status then shows what did not start).
func waitRunning(ctx context.Context, fl *fleet.Fleet, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		running := true
		for _, w := range fl.Workers() {
			if w.Snapshot().State != subjects.StateRunning {
				running = false
				break
			}
		}
		if running || time.Now().After(deadline) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

// devBanner is what `jetfleet dev` says once the fleet is ready.
type devBanner struct {
	nats, http, dataDir string
	spec                *pipeline.Spec
	builtin, write      bool
	workers             int
	demo                *demo
	demoRate            float64
}

func (b devBanner) datasets() []string {
	var out []string
	for _, ds := range b.spec.Datasets {
		out = append(out, ds.Name)
	}
	return out
}

func (b devBanner) marts() []string {
	var out []string
	for _, m := range b.spec.Marts {
		out = append(out, m.Name)
	}
	return out
}

// next are three commands worth trying against this fleet.
func (b devBanner) next() []string {
	env := ""
	if b.nats != defaultNATSURL {
		env = "NATS_URL=" + b.nats + " "
	}
	q := "SELECT * FROM " + firstOr(b.marts(), "<mart>") + " LIMIT 10"
	if b.dataDir != ".jetfleet" {
		q = "--data-dir " + b.dataDir + " '" + q + "'"
	} else {
		q = "'" + q + "'"
	}
	return []string{env + "jetfleet status", env + "jetfleet dlq ls", "jetfleet query " + q}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func (b devBanner) demoText() string {
	if b.demo == nil {
		return "off (--demo publishes sample data)"
	}
	rate := b.demoRate
	if rate <= 0 {
		rate = 5
	}
	return fmt.Sprintf("%s to %s at %g/s: %s", b.demo.what, subjects.Ingest(b.demo.dataset), rate, b.demo.detail)
}

func (b devBanner) consoleText() string {
	if b.write {
		return b.http + "/  (write actions on)"
	}
	return b.http + "/  (read-only; --console-write allows replay, pause, resume, drain)"
}

// print writes the banner as text on a terminal and as one structured
// line otherwise, so log collectors get fields, not art.
func (b devBanner) print(c *cli.Context, log zerolog.Logger) {
	pl := b.spec.Name
	if b.builtin {
		pl += " (built-in demo, examples/shop/pipeline.yaml)"
	}
	if !textLogs(c) {
		ev := log.Info().Str("nats", b.nats).Str("console", b.http+"/").Str("http", b.http).Str("data_dir", b.dataDir).
			Str("pipeline", b.spec.Name).Strs("datasets", b.datasets()).Strs("marts", b.marts()).Int("workers", b.workers).
			Bool("console_write", b.write).Strs("next", b.next())
		if b.demo != nil {
			ev = ev.Str("demo", b.demoText())
		}
		ev.Msg("jetfleet dev ready")
		return
	}
	var s strings.Builder
	s.WriteString("\njetfleet dev ready\n")
	row := func(k, v string) { fmt.Fprintf(&s, "  %-10s %s\n", k, v) }
	row("NATS", b.nats)
	row("console", b.consoleText())
	row("data dir", b.dataDir)
	row("pipeline", pl)
	row("datasets", strings.Join(b.datasets(), ", ")+"  ->  marts "+strings.Join(b.marts(), ", "))
	row("demo", b.demoText())
	for i, n := range b.next() {
		k := ""
		if i == 0 {
			k = "try"
		}
		row(k, n)
	}
	s.WriteString("\n")
	_, _ = fmt.Fprint(c.App.ErrWriter, s.String())
}

// textLogs says whether the logger writes for people (the console
// writer) rather than JSON, as newLogger decides.
func textLogs(c *cli.Context) bool {
	switch lookup(c, "log-format") {
	case "console":
		return true
	case "":
		return isatty.IsTerminal(os.Stderr.Fd())
	}
	return false
}
