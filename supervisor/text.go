package supervisor

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

// TextOptions tune [RenderText].
type TextOptions struct {
	// MaxWorkers caps the worker lines (the rest are counted). Default 20.
	MaxWorkers int
}

// RenderText writes the status as one screen a person reads at a glance:
// the headline, a line per step, the workers, the marts, then problems
// and notes.
func RenderText(w io.Writer, st *Status, o TextOptions) error {
	if o.MaxWorkers <= 0 {
		o.MaxWorkers = 20
	}
	var b strings.Builder
	sup := "DOWN"
	if st.Supervisor.Up {
		sup = fmt.Sprintf("up (%s on %s, %s)", st.Supervisor.ID, st.Supervisor.Host, ago(st.Time.Sub(st.Supervisor.Started)))
	}
	fmt.Fprintf(&b, "jetfleet status at %s    supervisor: %s\n", st.Time.Local().Format("2006-01-02 15:04:05"), sup)
	fmt.Fprintf(&b, "%s\n\n", st.Headline)

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tDATASET\tSTATE\tWORKERS\tPENDING\tIN FLIGHT\tREDELIVERED\tDLQ\tACKED/MIN\tRECORDS/MIN")
	var workers []WorkerStatus
	for _, s := range st.Steps {
		rate, records := "-", "-"
		if s.PerMinute >= 0 {
			rate, records = strconv.FormatInt(s.PerMinute, 10), strconv.FormatInt(s.RecordsPerMinute, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Step, s.Dataset, s.State, workerSummary(s.Workers),
			s.Pending, s.AckPending, s.Redelivered, s.DLQ, rate, records)
		workers = append(workers, s.Workers...)
	}
	if len(st.Steps) == 0 {
		fmt.Fprintln(tw, "(no steps)")
	}
	_ = tw.Flush()
	if len(st.Balance) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DATASET\tPUBLISHED\tCLEAN\tDEAD-LETTERED\tDUPLICATES\tIN FLIGHT\tUNACCOUNTED\tBOOKS")
		for _, d := range st.Balance {
			books := d.State
			if d.Note != "" {
				books += ": " + shorten(d.Note, 70)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", d.Dataset, d.Published, d.Clean, d.DeadLettered, d.Duplicates, d.InFlight, d.Unaccounted, books)
		}
		_ = tw.Flush()
	}
	if l := st.Landing; l != nil && (l.Waiting > 0 || l.Error != "") {
		if l.Error != "" {
			fmt.Fprintf(&b, "landing bucket %s: not listed: %s\n", subjects.LandingBucket, l.Error)
		} else {
			fmt.Fprintf(&b, "landing bucket %s: %d object(s) waiting to be ingested: %s\n", subjects.LandingBucket, l.Waiting, strings.Join(l.Names, ", "))
		}
	}

	if len(workers) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "WORKER\tSTEP\tLIVENESS\tSTATE\tHOST\tUPTIME\tLAST BEAT\tIN FLIGHT\tACKED\tLAST ERROR")
		shown := 0
		for _, w := range workers {
			if w.Liveness == LivenessStopped {
				continue // counted in the step's summary
			}
			if shown == o.MaxWorkers {
				fmt.Fprintf(tw, "... and more (see --json)\n")
				break
			}
			shown++
			uptime := "-"
			if w.UptimeSec > 0 {
				uptime = ago(time.Duration(w.UptimeSec * float64(time.Second)))
			}
			fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s ago\t%d\t%d\t%s\n", w.ID, w.Step, w.Dataset, w.Liveness, w.State,
				w.Host, uptime, ago(time.Duration(w.BeatAgeSec*float64(time.Second))), w.InFlight, w.Counters.Acked, shorten(w.LastErr, 60))
		}
		_ = tw.Flush()
	}

	if len(st.Marts) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MART\tROWS\tPARTITIONS\tUPDATED")
		for _, m := range st.Marts {
			upd := "never"
			if !m.UpdatedAt.IsZero() {
				upd = ago(st.Time.Sub(m.UpdatedAt)) + " ago"
			}
			switch {
			case m.Rebuilding != "":
				upd += "  rebuilding from the lake (" + m.Rebuilding + ")"
			case m.RebuiltAt != nil:
				upd += "  rebuilt from the lake " + ago(st.Time.Sub(*m.RebuiltAt)) + " ago"
			}
			if m.Err != "" {
				upd += "  error: " + shorten(m.Err, 60)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", m.Name, m.Rows, m.Partitions, upd)
		}
		_ = tw.Flush()
	}
	if drift := contractLines(st); len(drift) > 0 {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DATASET\tCONTRACT\tFIELD OUTSIDE THE SCHEMA\tRECORDS")
		for _, l := range drift {
			fmt.Fprintln(tw, l)
		}
		_ = tw.Flush()
	}
	if clustered(st.Streams) {
		b.WriteString("\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tREPLICAS\tLEADER\tFOLLOWERS")
		for _, s := range st.Streams {
			leader, followers := "-", "-"
			if c := s.Cluster; c != nil {
				leader = c.Leader
				var fs []string
				for _, p := range c.Replicas {
					state := "current"
					switch {
					case p.Offline:
						state = "offline"
					case p.down():
						state = "not seen for " + ago(time.Duration(p.SeenAgoSec*float64(time.Second)))
					case !p.Current:
						state = fmt.Sprintf("behind %d", p.Lag)
					}
					fs = append(fs, p.Name+" ("+state+")")
				}
				followers = strings.Join(fs, ", ")
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Replicas, leader, followers)
		}
		_ = tw.Flush()
	}
	if len(st.Problems) > 0 {
		b.WriteString("\nProblems:\n")
		for _, p := range st.Problems {
			fmt.Fprintf(&b, "  - %s\n", p)
		}
	}
	if len(st.Notes) > 0 {
		b.WriteString("\nNotes:\n")
		for _, n := range st.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func workerSummary(ws []WorkerStatus) string {
	n := map[string]int{}
	for _, w := range ws {
		n[w.Liveness]++
	}
	var parts []string
	for _, l := range []string{LivenessAlive, LivenessStale, LivenessDead} {
		if n[l] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[l], l))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ago formats a duration for people: 45s, 3m12s, 2h5m, 3d4h.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// clustered reports whether any stream is replicated: only then the
// screen shows where the streams live.
func clustered(streams []StreamStatus) bool {
	for _, s := range streams {
		if s.Replicas > 1 {
			return true
		}
	}
	return false
}

// contractLines are the schema contract decisions of the steps that
// report any, a line per field, most records first.
func contractLines(st *Status) []string {
	var out []string
	for _, s := range st.Steps {
		c := s.Contract
		if c == nil || len(c.Fields) == 0 {
			continue
		}
		fields := make([]string, 0, len(c.Fields))
		for f := range c.Fields {
			fields = append(fields, f)
		}
		sort.Slice(fields, func(i, j int) bool {
			if c.Fields[fields[i]] != c.Fields[fields[j]] {
				return c.Fields[fields[i]] > c.Fields[fields[j]]
			}
			return fields[i] < fields[j]
		})
		what := map[string]string{"evolve": "kept", "discard_columns": "dropped", "freeze": "dead-lettered"}[c.Contract]
		for _, f := range fields {
			out = append(out, fmt.Sprintf("%s\t%s\t%s\t%d %s", s.Dataset, c.Contract, f, c.Fields[f], what))
		}
	}
	return out
}
