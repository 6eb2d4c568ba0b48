package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Result is every figure of one run; `--json FILE` writes it as is, so
// fields are only ever added.
type Result struct {
	Time     time.Time `json:"time"`
	Mode     Mode      `json:"mode"`
	Events   int       `json:"events"`
	BulkSize int       `json:"bulk_size,omitempty"`
	Seed     uint64    `json:"seed"`
	// Rate is the offered load of an open-loop run, records/s; 0 for a
	// closed-loop (as fast as possible) run.
	Rate float64 `json:"rate,omitempty"`
	// DurationSeconds is the publishing time asked for (--duration), 0
	// when the run published a number of events.
	DurationSeconds float64 `json:"duration_s,omitempty"`
	// MemoryLimit is each aggregator replica's DuckDB memory limit.
	MemoryLimit string `json:"memory_limit,omitempty"`
	// Workers is replicas per step.
	Workers   []StepWorkers `json:"workers"`
	Server    string        `json:"server"` // "embedded" or the URL
	CPUs      int           `json:"cpus"`
	GoVersion string        `json:"go_version"`

	// Generated is what the generator made, by kind.
	Generated Counts `json:"generated"`
	// Observed is what the fleet made of it.
	Observed Counts `json:"observed"`

	Publish Rate `json:"publish"`
	// EndToEnd runs from the first publish to the last mart flush;
	// Committed to the aggregator's last commit to its DuckDB state,
	// which excludes the marts' flush interval.
	EndToEnd  Rate `json:"end_to_end"`
	Committed Rate `json:"committed"`

	// Steps is each step's records/s, from the first publish to the
	// step's last ack: the slowest step bounds the pipeline.
	Steps []StepRate `json:"steps"`
	// AggregateLagSeconds is the aggregator's last commit after the
	// transform step's last ack (sampled, so within SampleEvery), and
	// MartLagSeconds the last mart flush after the last commit: together
	// whether the aggregate step keeps up with the stream.
	AggregateLagSeconds float64 `json:"aggregate_lag_s"`
	MartLagSeconds      float64 `json:"mart_lag_s"`
	// Latency is first publish (or, open loop, scheduled publish) to the
	// aggregator's commit, per record.
	Latency Latency `json:"latency"`

	DeadLetters  uint64 `json:"dead_letters"`
	Duplicates   uint64 `json:"duplicates"`
	Redeliveries uint64 `json:"redeliveries"`

	// CPUSeconds is process CPU (user+system) from first publish to idle:
	// with the embedded server it includes nats-server's share.
	CPUSeconds          float64 `json:"cpu_seconds"`
	CPUSecondsPerMillon float64 `json:"cpu_seconds_per_million_records"`
	// PeakRSSBytes is the process's peak resident set after the fleet run,
	// before the baselines.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`

	RawHop Rate `json:"raw_hop"`
	// BatchSeconds is DuckDB computing every mart from one NDJSON file of
	// the clean records (read_json, de-duplicated on the key).
	BatchSeconds float64 `json:"batch_seconds"`
	// HopEfficiency = end-to-end records/s x persisted hops / raw hop
	// records/s; CommittedHopEfficiency uses the committed rate.
	PersistedHops          int     `json:"persisted_hops"`
	HopEfficiency          float64 `json:"hop_efficiency"`
	CommittedHopEfficiency float64 `json:"committed_hop_efficiency"`
	// FleetBatchRatio = end-to-end seconds / batch seconds.
	FleetBatchRatio float64 `json:"fleet_batch_ratio"`

	// Samples are the fleet over time: lag per step and memory.
	Samples []Sample `json:"samples,omitempty"`

	Marts      []MartCheck `json:"marts"`
	Verified   bool        `json:"verified"`
	Mismatches []string    `json:"mismatches,omitempty"`
}

// StepWorkers is how many replicas ran a step.
type StepWorkers struct {
	Step     string `json:"step"`
	Replicas int    `json:"replicas"`
}

// StepRate is one step's share of the run.
type StepRate struct {
	Step string `json:"step"`
	Rate
	// DeadLetters is records the step dead-lettered.
	DeadLetters uint64 `json:"dead_letters"`
}

// Counts are records by kind.
type Counts struct {
	Valid     int64 `json:"valid"`
	Invalid   int64 `json:"invalid"`
	Duplicate int64 `json:"duplicate"`
}

// Rate is records moved in a time.
type Rate struct {
	Messages      int64   `json:"messages,omitempty"`
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_s"`
}

func newRate(msgs, recs int64, d time.Duration) Rate {
	r := Rate{Messages: msgs, Records: recs, Seconds: d.Seconds()}
	if d > 0 {
		r.RecordsPerSec = float64(recs) / d.Seconds()
	}
	return r
}

// MartCheck is one mart compared with its batch result.
type MartCheck struct {
	Name     string `json:"name"`
	Rows     int    `json:"rows"`
	Expected int    `json:"expected_rows"`
	Equal    bool   `json:"equal"`
}

// WriteJSON writes r to path, indented.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable prints r as an aligned table for a terminal.
func (r *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s\t%s\n", k, fmt.Sprintf(format, args...)) }
	mode := string(r.Mode)
	if r.Mode == ModeBulk {
		mode += fmt.Sprintf(" (%d records/message)", r.BulkSize)
	}
	load := "closed loop"
	if r.Rate > 0 {
		load = fmt.Sprintf("open loop at %s records/s", num(r.Rate))
	}
	row("scenario", "%s, %d events, %s, seed %d, server %s, %d CPUs", mode, r.Events, load, r.Seed, r.Server, r.CPUs)
	var ws []string
	for _, w := range r.Workers {
		ws = append(ws, fmt.Sprintf("%s=%d", w.Step, w.Replicas))
	}
	row("workers", "%s", strings.Join(ws, " "))
	row("generated", "%d valid, %d invalid, %d duplicate", r.Generated.Valid, r.Generated.Invalid, r.Generated.Duplicate)
	row("observed", "%d clean, %d dead letters, %d duplicates dropped", r.Observed.Valid, r.Observed.Invalid, r.Observed.Duplicate)
	row("publish", "%s records/s  (%d messages in %.3fs)", num(r.Publish.RecordsPerSec), r.Publish.Messages, r.Publish.Seconds)
	row("end to end", "%s records/s  (%.3fs, first publish to marts flushed)", num(r.EndToEnd.RecordsPerSec), r.EndToEnd.Seconds)
	row("committed", "%s records/s  (%.3fs, first publish to last aggregator commit)", num(r.Committed.RecordsPerSec), r.Committed.Seconds)
	for _, st := range r.Steps {
		row("  step "+st.Step, "%s records/s  (%d records by %.3fs, %d dead-lettered)", num(st.RecordsPerSec), st.Records, st.Seconds, st.DeadLetters)
	}
	row("aggregate lag", "last commit %.2fs after transform's last ack, marts flushed %.2fs after the last commit", r.AggregateLagSeconds, r.MartLagSeconds)
	if l := r.Latency; l.Count > 0 {
		row("latency", "p50 %s  p90 %s  p99 %s  max %s  (publish to aggregator commit, %d records)", ms(l.P50Ms), ms(l.P90Ms), ms(l.P99Ms), ms(l.MaxMs), l.Count)
		if s, a := l.Streams, l.Aggregate; s != nil && a != nil {
			row("  split", "to the clean stream p50 %s p99 %s max %s; then to the commit p50 %s p99 %s max %s", ms(s.P50Ms), ms(s.P99Ms), ms(s.MaxMs), ms(a.P50Ms), ms(a.P99Ms), ms(a.MaxMs))
		}
	}
	row("redeliveries", "%d", r.Redeliveries)
	row("cpu", "%.2f s total, %.2f s per million records", r.CPUSeconds, r.CPUSecondsPerMillon)
	row("peak rss", "%.1f MiB (whole process)", float64(r.PeakRSSBytes)/(1<<20))
	row("raw hop baseline", "%s records/s  (nats.go async publish + pull consume/ack, %.3fs)", num(r.RawHop.RecordsPerSec), r.RawHop.Seconds)
	row("batch baseline", "%.3fs  (DuckDB read_json + marts over clean NDJSON)", r.BatchSeconds)
	row("hop efficiency", "%.2f  (end to end x %d hops / raw hop; committed: %.2f)", r.HopEfficiency, r.PersistedHops, r.CommittedHopEfficiency)
	row("fleet/batch", "%.1fx", r.FleetBatchRatio)
	for _, m := range r.Marts {
		row("mart "+m.Name, "%d rows, expected %d, equal: %v", m.Rows, m.Expected, m.Equal)
	}
	verified := "no"
	if r.Verified {
		verified = "yes"
	}
	row("verified", "%s", verified)
	for _, m := range r.Mismatches {
		row("  mismatch", "%s", m)
	}
	return tw.Flush()
}

// ms formats milliseconds with sensible precision.
func ms(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}

// num formats a rate with thousands separators.
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
