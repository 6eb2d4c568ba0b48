package testrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/marts/query"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/fleet"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

// Config tunes a Runner.
type Config struct {
	Logger  zerolog.Logger
	Version string
	// Timeout bounds a case that sets none. Default 60s.
	Timeout time.Duration
	// Update writes each case's outputs to its golden file instead of
	// comparing them.
	Update bool
	// TempDir holds the cases' servers and data dirs. Default os.TempDir().
	TempDir string
	// CaseFilter runs only the cases whose name contains it.
	CaseFilter string
	// Keep leaves each case's data dir (with the server's store under
	// nats/, as `jetfleet dev` lays it out) in place, named in
	// Result.DataDir, to look into with `jetfleet query` or to start
	// another run from (DataDir).
	Keep bool
	// DataDir, if set, is copied as each case's starting state: its
	// streams, lake, marts and aggregator state (a kept data dir, or a
	// `jetfleet dev` one not in use). Clean records, dead letters and
	// alerts are then those of the case's input; mart rows are the marts'.
	DataDir string
}

// DefaultTimeout bounds a case that sets none.
const DefaultTimeout = 60 * time.Second

// Runner runs test files.
type Runner struct{ cfg Config }

// New makes a Runner.
func New(cfg Config) *Runner {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Runner{cfg: cfg}
}

// Result is one case's outcome.
type Result struct {
	File    string  `json:"file"`
	Line    int     `json:"line"`
	Case    string  `json:"case"`
	Passed  bool    `json:"passed"`
	Seconds float64 `json:"seconds"`
	// Diffs say what differed, one line each, expected against got.
	Diffs []string `json:"diffs,omitempty"`
	// Error is why the case could not run (not a mismatch).
	Error string `json:"error,omitempty"`
	// Updated names the golden file --update wrote.
	Updated string `json:"updated,omitempty"`
	// Notes are what the run changed from production (external steps).
	Notes []string `json:"notes,omitempty"`
	// DataDir is the case's data dir, kept with Config.Keep.
	DataDir string `json:"data_dir,omitempty"`
}

// Text is the result as the command prints it: a line, and for a case
// that failed what differed, indented.
func (res Result) Text() string {
	var b strings.Builder
	status := "ok  "
	if !res.Passed {
		status = "FAIL"
	}
	fmt.Fprintf(&b, "%s %s:%d: %s (%.1fs)\n", status, res.File, res.Line, res.Case, res.Seconds)
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "    note: %s\n", n)
	}
	if res.DataDir != "" {
		fmt.Fprintf(&b, "    data dir: %s\n", res.DataDir)
	}
	if res.Updated != "" {
		fmt.Fprintf(&b, "    wrote %s\n", res.Updated)
	}
	if res.Error != "" {
		fmt.Fprintf(&b, "    error: %s\n", res.Error)
	}
	for _, d := range res.Diffs {
		fmt.Fprintf(&b, "    %s\n", d)
	}
	return b.String()
}

// RunFile runs every case of f, one after the other, calling each with
// every result as it comes.
func (r *Runner) RunFile(ctx context.Context, f *File, eachFunc func(Result)) []Result {
	var out []Result
	for _, c := range f.Cases {
		if !strings.Contains(c.Name, r.cfg.CaseFilter) {
			continue
		}
		res := r.runCase(ctx, f, c)
		if eachFunc != nil {
			eachFunc(res)
		}
		out = append(out, res)
	}
	return out
}

func (r *Runner) runCase(ctx context.Context, f *File, c *Case) Result {
	start := time.Now()
	res := Result{File: f.Path, Line: c.line, Case: c.Name}
	got, notes, err := r.outputs(ctx, f, c, &res.DataDir)
	res.Notes = notes
	res.Seconds = time.Since(start).Seconds()
	if err != nil {
		res.Error = err.Error()
		return res
	}
	if r.cfg.Update && c.Golden != "" {
		if err := writeGolden(c.Golden, got); err != nil {
			res.Error = err.Error()
			return res
		}
		res.Updated = c.Golden
	}
	if c.Golden != "" && !r.cfg.Update {
		want, err := readGolden(c.Golden)
		if err != nil {
			res.Error = err.Error()
			return res
		}
		res.Diffs = append(res.Diffs, compare(want, got)...)
	}
	if c.Expect != nil {
		res.Diffs = append(res.Diffs, compare(c.Expect, got)...)
	}
	res.Passed = len(res.Diffs) == 0
	return res
}

// outputs runs the case on a fleet of its own and collects what came out.
func (r *Runner) outputs(ctx context.Context, f *File, c *Case, kept *string) (*Outputs, []string, error) {
	timeout := r.cfg.Timeout
	if c.Timeout != "" {
		d, err := time.ParseDuration(c.Timeout)
		if err != nil {
			return nil, nil, fmt.Errorf("timeout %q: %w", c.Timeout, err)
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	spec, err := f.loadSpec()
	if err != nil {
		return nil, nil, err
	}
	notes, err := prepareSpec(spec, c)
	if err != nil {
		return nil, notes, err
	}
	dir, err := os.MkdirTemp(r.cfg.TempDir, "jetfleet-test-")
	if err != nil {
		return nil, notes, err
	}
	dataDir := filepath.Join(dir, "data")
	if r.cfg.Keep {
		*kept = dataDir
	} else {
		defer os.RemoveAll(dir)
	}
	if r.cfg.DataDir != "" {
		if err := os.CopyFS(dataDir, os.DirFS(r.cfg.DataDir)); err != nil {
			return nil, notes, fmt.Errorf("copy the data dir: %w", err)
		}
	}

	srv, err := embedded.Start(embedded.Config{StoreDir: filepath.Join(dataDir, "nats"), Port: -1, Quiet: true})
	if err != nil {
		return nil, notes, err
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.ClientURL(), nats.InProcessServer(srv), nats.Name("jetfleet-pipeline-test"))
	if err != nil {
		return nil, notes, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, notes, err
	}
	if err := subjects.Ensure(ctx, js, subjects.StreamOptions{}); err != nil {
		return nil, notes, err
	}
	// What the streams held before (a data dir's history) is not the
	// case's output.
	before, err := streamCounts(ctx, js, spec)
	if err != nil {
		return nil, notes, err
	}
	// Inputs go in before the fleet starts, so the aggregator sees them
	// in few batches and the marts are written (and their alert rules
	// evaluated) on the whole input, as a test expects.
	if err := publishInputs(ctx, js, spec, c, dir); err != nil {
		return nil, notes, err
	}

	fl, err := fleet.Build(fleet.Config{
		Conn: nc, Logger: r.cfg.Logger, Version: r.cfg.Version, Spec: spec, LoadLookups: true,
		DataDir: dataDir, MemoryLimit: "256MB",
	})
	if err != nil {
		return nil, notes, err
	}
	if err := fl.Prepare(ctx); err != nil {
		return nil, notes, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = fl.Close(closeCtx)
	}()
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: r.cfg.Logger})
	for _, m := range fl.Members {
		tree.Add(m.Name, m.Run)
	}
	runCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	treeDone := make(chan error, 1)
	go func() { treeDone <- tree.Run(runCtx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopFleet()
		return <-treeDone
	}
	defer func() { _ = stop() }()

	// Records published before the fleet started look settled to
	// WaitIdle while a consumer that will read them does not exist yet
	// (the aggregator opens DuckDB first): wait for every one.
	var missing string
	if err := waitFor(ctx, func() bool { missing = missingConsumers(ctx, js, spec); return missing == "" }); err != nil {
		return nil, notes, fmt.Errorf("the fleet did not start: no consumer %s", missing)
	}
	if _, err := supervisor.WaitIdle(ctx, js, supervisor.WaitIdleOptions{
		Poll:     50 * time.Millisecond,
		Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(supervisor.DirMarts(dataDir))},
	}); err != nil {
		return nil, notes, fmt.Errorf("the fleet did not finish: %w", err)
	}
	if err := waitFor(ctx, func() bool { return fl.AlertsPending() == 0 }); err != nil {
		return nil, notes, fmt.Errorf("mart alert rules did not finish: %w", err)
	}
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, notes, fmt.Errorf("fleet: %w", err)
	}
	got, err := collect(ctx, js, spec, dataDir, before)
	return got, notes, err
}

// missingConsumers names a consumer of spec's fleet that does not exist
// yet, "" when all do.
func missingConsumers(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec) string {
	st, err := supervisor.Snapshot(ctx, js)
	if err != nil {
		return err.Error()
	}
	have := map[string]int{}
	for _, s := range st.Steps {
		if s.Consumer != "" {
			have[s.Step+"/"+s.Dataset]++
		}
	}
	for _, ds := range spec.Datasets {
		want := map[string]int{
			subjects.StepValidate.Name: 1, subjects.StepTransform.Name: 1, subjects.StepRekey.Name: 1,
			subjects.StepAggregate.Name: 1,
		}
		if len(spec.AlertsOf(ds.Name, pipeline.AlertRecord)) > 0 {
			want[subjects.StepAlert.Name] = 1
		}
		for step, n := range want {
			if have[step+"/"+ds.Name] < n {
				return step + "/" + ds.Name
			}
		}
	}
	return ""
}

// prepareSpec makes spec the case's: its lookup rows, external steps run
// by jetfleet as pass-through (the test covers jetfleet's part), marts
// written soon after the input is in.
func prepareSpec(spec *pipeline.Spec, c *Case) ([]string, error) {
	var notes []string
	for name, rows := range c.Lookups {
		l := spec.Lookup(name)
		if l == nil {
			return nil, fmt.Errorf("lookups: no table %q in pipeline %s", name, spec.Name)
		}
		l.Rows, l.CSV = rows, ""
	}
	// A test must not reach outside its temp dir: no watched landing
	// directory (the watcher moves the files it ingests), no webhook.
	if len(spec.Webhooks) > 0 {
		notes = append(notes, fmt.Sprintf("%d webhook target(s) not called (alerts are checked on JF_ALERTS)", len(spec.Webhooks)))
		spec.Webhooks = nil
	}
	for _, ds := range spec.Datasets {
		if ds.Ingest.Watch != "" {
			notes = append(notes, fmt.Sprintf("dataset %s: landing directory %s not watched", ds.Name, ds.Ingest.Watch))
			ds.Ingest.Watch = ""
		}
		for _, st := range ds.ExternalSteps {
			if st == subjects.StepTransform.Name && len(ds.Transforms) == 0 {
				notes = append(notes, fmt.Sprintf("dataset %s: external step %s runs as pass-through", ds.Name, st))
				continue
			}
			return notes, fmt.Errorf("dataset %s: external step %s cannot run in a test (only a transform with no transforms of jetfleet's runs as pass-through)", ds.Name, st)
		}
		ds.ExternalSteps = nil
	}
	for _, m := range spec.Marts {
		m.FlushInterval = 100 * time.Millisecond
	}
	return notes, nil
}

func publishInputs(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec, c *Case, dir string) error {
	for i, in := range c.Input {
		name := in.Dataset
		if name == "" {
			if len(spec.Datasets) != 1 {
				return fmt.Errorf("input[%d]: dataset not given and pipeline %s has %d datasets", i, spec.Name, len(spec.Datasets))
			}
			name = spec.Datasets[0].Name
		}
		ds := spec.Dataset(name)
		if ds == nil {
			return fmt.Errorf("input[%d]: no dataset %q in pipeline %s (it has %s)", i, name, spec.Name, strings.Join(spec.DatasetNames(), ", "))
		}
		path := in.File
		if path == "" {
			ext := map[string]string{"": ".ndjson", "ndjson": ".ndjson", "csv": ".csv", "fixed_width": ".txt"}[in.Format]
			if ext == "" {
				return fmt.Errorf("input[%d]: format %q (want ndjson, csv or fixed_width)", i, in.Format)
			}
			content := []byte(in.Text)
			if len(in.Records) > 0 {
				var b bytes.Buffer
				for j, rec := range in.Records {
					line, err := recordLine(rec)
					if err != nil {
						return fmt.Errorf("input[%d].records[%d]: %w", i, j, err)
					}
					b.Write(line)
					b.WriteByte('\n')
				}
				content = b.Bytes()
			}
			path = filepath.Join(dir, fmt.Sprintf("input-%d%s", i, ext))
			if err := os.WriteFile(path, content, 0o600); err != nil {
				return err
			}
		}
		if _, err := ingest.LocalFile(ctx, js, ds, path); err != nil {
			return fmt.Errorf("input[%d]: %w", i, err)
		}
	}
	return nil
}

// recordLine is an inline record as an NDJSON line: a mapping as JSON, a
// string as written.
func recordLine(rec any) ([]byte, error) {
	switch v := rec.(type) {
	case string:
		if strings.ContainsRune(v, '\n') {
			return nil, errors.New("a raw record is one line")
		}
		return []byte(v), nil
	case map[string]any:
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("got %T, want a mapping (a JSON object) or a string (a raw line)", rec)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, condFunc func() bool) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !condFunc() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// collect reads what the fleet produced: clean records and dead letters
// from their streams, alerts from JF_ALERTS, mart rows from the Parquet
// files through DuckDB.
func collect(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec, dataDir string, before counts) (*Outputs, error) {
	got := &Outputs{Clean: map[string]*Rows{}, Marts: map[string]*Rows{}}
	for _, ds := range spec.Datasets {
		rows, err := readRecords(ctx, js, subjects.StreamClean, subjects.CleanFilters(ds.Name), before)
		if err != nil {
			return nil, err
		}
		got.Clean[ds.Name] = &Rows{Rows: rows, Key: []string{ds.Key}}
	}

	dls, err := supervisor.ListDeadLetters(ctx, js, supervisor.DLQFilter{})
	if err != nil {
		return nil, err
	}
	var dead []DeadLetter
	for _, d := range dls {
		if d.Seq <= before[subjects.StreamDLQ].last {
			continue
		}
		for _, body := range deadBodies(d) {
			dl := DeadLetter{Dataset: d.Dataset, Step: d.Step, Reason: d.Reason}
			var rec map[string]any
			if json.Unmarshal(body, &rec) == nil && rec != nil {
				dl.Record = rec
			} else {
				dl.Data = string(body)
			}
			dead = append(dead, dl)
		}
	}
	got.DeadLetters = &dead

	alerts := []Alert{}
	bodies, err := readBodies(ctx, js, subjects.StreamAlerts, nil, before)
	if err != nil {
		return nil, err
	}
	for _, b := range bodies {
		var a alert.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			return nil, fmt.Errorf("alert %q: %w", b, err)
		}
		alerts = append(alerts, Alert{Rule: a.Rule, Key: a.Key, Severity: a.Severity, Message: a.Message})
	}
	got.Alerts = &alerts

	if len(spec.Marts) == 0 {
		return got, nil
	}
	eng, err := query.Open(ctx, query.Config{DataDir: dataDir, MemoryLimit: "256MB"})
	if err != nil {
		return nil, fmt.Errorf("read marts: %w", err)
	}
	defer eng.Close()
	for _, m := range spec.Marts {
		rows := []map[string]any{}
		if slices.ContainsFunc(eng.Tables(), func(t query.Table) bool { return t.Name == m.Name }) {
			// DuckDB writes the JSON: dates and timestamps as it prints
			// them, decimals as numbers.
			res, err := eng.Query(ctx, fmt.Sprintf(`SELECT CAST(to_json(t) AS VARCHAR) FROM %q AS t`, m.Name))
			if err != nil {
				return nil, fmt.Errorf("read mart %s: %w", m.Name, err)
			}
			for _, row := range res.Rows {
				s, _ := row[0].(string)
				var rec map[string]any
				if err := json.Unmarshal([]byte(s), &rec); err != nil {
					return nil, fmt.Errorf("mart %s row %q: %w", m.Name, s, err)
				}
				rows = append(rows, rec)
			}
		}
		got.Marts[m.Name] = &Rows{Rows: rows}
	}
	return got, nil
}

// deadBodies are the records a dead letter holds: one, or the one of a
// bulk message it names.
func deadBodies(d supervisor.DeadLetter) [][]byte {
	if d.RecordIndex < 0 {
		return [][]byte{d.Data}
	}
	lines := bytes.Split(d.Data, []byte{'\n'})
	if d.RecordIndex < len(lines) && d.Records > 1 {
		return [][]byte{lines[d.RecordIndex]}
	}
	return [][]byte{d.Data}
}

func readRecords(ctx context.Context, js jetstream.JetStream, stream string, filters []string, before counts) ([]map[string]any, error) {
	bodies, err := readBodies(ctx, js, stream, filters, before)
	if err != nil {
		return nil, err
	}
	rows := []map[string]any{}
	for _, b := range bodies {
		for line := range bytes.SplitSeq(b, []byte{'\n'}) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var rec map[string]any
			if err := json.Unmarshal(line, &rec); err != nil {
				return nil, fmt.Errorf("%s record %q: %w", stream, line, err)
			}
			rows = append(rows, rec)
		}
	}
	return rows, nil
}

// streamState is what a stream held: its last sequence, and messages
// per filter.
type streamState struct {
	last     uint64
	byFilter map[string]uint64
}

// counts are the output streams' states, by stream.
type counts map[string]streamState

// outputFilters are the filters collect reads each output stream with.
func outputFilters(spec *pipeline.Spec) map[string][]string {
	clean := []string{}
	for _, ds := range spec.Datasets {
		clean = append(clean, subjects.CleanFilters(ds.Name)...)
	}
	return map[string][]string{subjects.StreamClean: clean, subjects.StreamDLQ: {">"}, subjects.StreamAlerts: {">"}}
}

func streamCounts(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec) (counts, error) {
	out := counts{}
	for stream, filters := range outputFilters(spec) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			return nil, err
		}
		st := streamState{byFilter: map[string]uint64{}}
		for _, f := range filters {
			n, last, err := filterCount(ctx, s, f)
			if err != nil {
				return nil, err
			}
			st.byFilter[f], st.last = n, max(st.last, last)
		}
		out[stream] = st
	}
	return out, nil
}

// filterCount is how many messages of s match filter, and s's last
// sequence.
func filterCount(ctx context.Context, s jetstream.Stream, filter string) (n, last uint64, err error) {
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, 0, err
	}
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, info.State.LastSeq, nil
}

// readBodies reads the messages of stream (matching filters) stored
// after before's, in order.
func readBodies(ctx context.Context, js jetstream.JetStream, stream string, filters []string, before counts) ([][]byte, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	// Count first: an ordered consumer says nothing of an empty filter
	// but by timing out.
	if len(filters) == 0 {
		filters = []string{">"}
	}
	prev := before[stream]
	var total uint64
	for _, f := range filters {
		n, _, err := filterCount(ctx, s, f)
		if err != nil {
			return nil, err
		}
		total += n - min(n, prev.byFilter[f])
	}
	if total == 0 {
		return nil, nil
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: filters}
	if prev.last > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, prev.last+1
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for uint64(len(out)) < total {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		out = append(out, m.Data())
	}
	return out, nil
}
