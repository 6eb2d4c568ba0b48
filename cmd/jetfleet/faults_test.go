package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/bench"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/marts/query"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

// The fault suite runs the shop pipeline with every step as its own
// process against a `jetfleet server` process, kills workers and the
// server with SIGKILL at seeded random moments while records flow,
// restarts them, and then checks the invariants of DESIGN.md: the marts
// equal an independent computation over the valid, de-duplicated
// generated records, JF_DLQ holds exactly the invalid records, and
// clean + dead-lettered + duplicates = published. TestFaultsShort runs
// in `make test`; TestChaos (build tag long, `make chaos`) is the big one.

// faultPlan says how much data flows and what gets killed.
type faultPlan struct {
	Seed    uint64
	Records int
	// Rate paces the publisher (records/s), so kills land while every
	// step has work rather than after the pipeline drained.
	Rate                         float64
	InvalidShare, DuplicateShare float64
	// KillsPerStep SIGKILLs each worker step this often; RepeatStep is
	// killed RepeatKills more times on top.
	KillsPerStep int
	RepeatStep   string
	RepeatKills  int
	// ServerKills SIGKILLs the server this often.
	ServerKills int
	// Bulk sends every other group of records as one bulk message.
	Bulk bool
	// AckWait is the workers' --ack-wait: how soon a killed worker's
	// messages come back.
	AckWait time.Duration
	// Idle bounds the wait for the pipeline to drain after the last record.
	Idle time.Duration
	// Sync is the server's --sync ("" keeps nats.conf's).
	Sync string
}

// faultReport is what a run observed.
type faultReport struct {
	Plan         faultPlan
	Kills        map[string]int // by process: validate, transform, aggregate, server
	Restarts     int
	Redeliveries uint64 // deliveries beyond the first, from the consumers
	WorkerRedel  int64  // deliveries with NumDelivered > 1, from the workers' heartbeats
	Published    int    // generated records
	Generated    bench.Counts
	Ingested     int64 // records JF_INGEST stored
	Clean        int64 // distinct records in the aggregator's state
	DeadLettered int   // records in JF_DLQ
	DupsServer   int64 // duplicates the server dropped at publish (Nats-Msg-Id)
	DupsKey      int64 // duplicates the aggregator dropped on the key
	MartsChecked []string
	Took         time.Duration
}

// table is the summary `make chaos` prints.
func (r *faultReport) table() string {
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	kills := 0
	for _, n := range r.Kills {
		kills += n
	}
	steps := []string{"validate", "transform", "aggregate", "server"}
	perStep := make([]string, 0, len(steps))
	for _, s := range steps {
		perStep = append(perStep, fmt.Sprintf("%s %d", s, r.Kills[s]))
	}
	rows := [][2]string{
		{"seed", strconv.FormatUint(r.Plan.Seed, 10)},
		{"server sync", cmpOr(r.Plan.Sync, "nats.conf default")},
		{"kills (SIGKILL)", fmt.Sprintf("%d (%s)", kills, strings.Join(perStep, ", "))},
		{"restarts", strconv.Itoa(r.Restarts)},
		{"redeliveries (consumers)", strconv.FormatUint(r.Redeliveries, 10)},
		{"redelivered (worker beats)", strconv.FormatInt(r.WorkerRedel, 10)},
		{"records in", strconv.Itoa(r.Published)},
		{"clean", fmt.Sprintf("%d (generated valid %d)", r.Clean, r.Generated.Valid)},
		{"dead-lettered", fmt.Sprintf("%d (generated invalid %d)", r.DeadLettered, r.Generated.Invalid)},
		{"duplicates", fmt.Sprintf("%d = %d by Nats-Msg-Id at publish + %d by key in the aggregator (generated %d)", r.DupsServer+r.DupsKey, r.DupsServer, r.DupsKey, r.Generated.Duplicate)},
		{"clean + dead + dups", fmt.Sprintf("%d of %d published", r.Clean+int64(r.DeadLettered)+r.DupsServer+r.DupsKey, r.Published)},
		{"marts verified", strings.Join(r.MartsChecked, ", ")},
		{"took", r.Took.Round(time.Second).String()},
	}
	fmt.Fprintln(w, "FAULT RUN\t")
	for _, row := range rows {
		fmt.Fprintf(w, "%s\t%s\n", row[0], row[1])
	}
	_ = w.Flush()
	return b.String()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// generated is the run's input, kept to check the output against.
type generated struct {
	msgs    []*nats.Msg
	offsets []int // offsets[i]: records before msgs[i], for pacing
	counts  bench.Counts
	valid   map[string]bench.Order // by order_id, first occurrence
	invalid map[string]int         // order_id -> how many invalid records carry it
}

// bulkSize is the records of one bulk message, and the pacing window.
const bulkSize = 100

// generateOrders makes n orders. With bulk, every other group of
// bulkSize records goes as one bulk message with its own id, so the
// duplicates in it pass the server's Nats-Msg-Id check and only the
// aggregator's key de-duplication can catch them; the other groups go one
// record per message with the order id as message id.
func generateOrders(seed uint64, n int, invalid, dup float64, bulk bool) generated {
	gen := bench.NewOrderGenerator(seed, invalid, dup)
	g := generated{valid: map[string]bench.Order{}, invalid: map[string]int{}}
	var chunk [][]byte
	for i := range n {
		line, kind := gen.Next()
		id := orderIDOf(line)
		switch kind {
		case bench.Valid:
			g.counts.Valid++
			var o bench.Order
			if err := json.Unmarshal(line, &o); err != nil {
				panic(fmt.Sprintf("generator made an unparsable valid record %s: %v", line, err))
			}
			g.valid[id] = o
		case bench.Invalid:
			g.counts.Invalid++
			g.invalid[id]++
		case bench.Duplicate:
			g.counts.Duplicate++
		}
		if bulk && (i/bulkSize)%2 == 1 {
			chunk = append(chunk, line)
			if len(chunk) == bulkSize || i == n-1 {
				m := nats.NewMsg(subjects.Ingest("orders"))
				m.Data = bytes.Join(chunk, []byte{'\n'})
				m.Header.Set(subjects.HeaderRecords, strconv.Itoa(len(chunk)))
				m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("chaos:%d:%d", seed, i/bulkSize))
				g.msgs, g.offsets = append(g.msgs, m), append(g.offsets, i+1-len(chunk))
				chunk = chunk[:0]
			}
			continue
		}
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = line
		// As `jetfleet publish --id-field order_id` sends it.
		m.Header.Set(subjects.HeaderMsgID, id)
		g.msgs, g.offsets = append(g.msgs, m), append(g.offsets, i)
	}
	return g
}

// orderIDRE finds the order id in a record, also in one too broken to parse.
var orderIDRE = regexp.MustCompile(`"order_id":\s*"([^"]*)"`)

func orderIDOf(line []byte) string {
	if m := orderIDRE.FindSubmatch(line); m != nil {
		return string(m[1])
	}
	return subjects.HashID(string(line))
}

// chaosProc is a jetfleet process the chaos loop kills and restarts.
type chaosProc struct {
	name  string
	args  []string
	env   []string
	ready string // log text that says it is up
	dir   string // logs: <dir>/<name>-<n>.log, one per incarnation
	n     int
	cmd   *exec.Cmd
	done  chan struct{}
	log   string
}

func (p *chaosProc) start(t *testing.T) {
	t.Helper()
	p.n++
	p.log = filepath.Join(p.dir, fmt.Sprintf("%s-%d.log", p.name, p.n))
	f, err := os.Create(p.log)
	require.NoError(t, err)
	cmd := exec.Command(binary, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	_ = f.Close() // the child holds its own descriptor
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	embeddedtest.WaitFor(t, time.Minute, p.name+" ready", func() bool {
		select {
		case <-done:
			t.Fatalf("%s exited while starting:\n%s", p.name, tail(p.log, 30))
		default:
		}
		b, _ := os.ReadFile(p.log)
		return bytes.Contains(b, []byte(p.ready))
	})
}

// kill SIGKILLs the process and waits until it is gone.
func (p *chaosProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop asks the process to drain (SIGTERM) and kills it if it does not
// exit in time.
func (p *chaosProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// chaosEvent is one planned kill.
type chaosEvent struct {
	at     time.Duration // since the first record was published
	target string
	pause  time.Duration // down time before the restart
}

func planEvents(rng *rand.Rand, p faultPlan, span time.Duration) []chaosEvent {
	var targets []string
	for _, s := range []string{"validate", "transform", "aggregate"} {
		for range p.KillsPerStep {
			targets = append(targets, s)
		}
	}
	for range p.RepeatKills {
		targets = append(targets, p.RepeatStep)
	}
	for range p.ServerKills {
		targets = append(targets, "server")
	}
	rng.Shuffle(len(targets), func(i, j int) { targets[i], targets[j] = targets[j], targets[i] })
	events := make([]chaosEvent, len(targets))
	for i, tg := range targets {
		// Kills land within the first 90% of the publishing span, so each
		// hits a step with work in flight.
		at := time.Duration((0.05 + 0.85*rng.Float64()) * float64(span))
		events[i] = chaosEvent{at: at, target: tg, pause: time.Duration(rng.IntN(1000)) * time.Millisecond}
	}
	sort.Slice(events, func(i, j int) bool { return events[i].at < events[j].at })
	return events
}

// runFaults runs plan and verifies the result; it returns what it saw.
func runFaults(t *testing.T, plan faultPlan) *faultReport {
	t.Helper()
	started := time.Now()
	ctx := t.Context()
	base := t.TempDir()
	storeDir, dataDir, logDir := filepath.Join(base, "nats"), filepath.Join(base, "data"), filepath.Join(base, "logs")
	require.NoError(t, os.MkdirAll(logDir, 0o750))
	port := embeddedtest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	env := []string{"NATS_URL=" + url}
	rng := rand.New(rand.NewPCG(plan.Seed, plan.Seed^0x5eed))
	rep := &faultReport{Plan: plan, Kills: map[string]int{}, Published: plan.Records}

	in := generateOrders(plan.Seed, plan.Records, plan.InvalidShare, plan.DuplicateShare, plan.Bulk)
	rep.Generated = in.counts

	serverArgs := []string{"server", "--log-format", "json", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--store-dir", storeDir, "--name", "chaos"}
	if plan.Sync != "" {
		serverArgs = append(serverArgs, "--sync", plan.Sync)
	}
	procs := map[string]*chaosProc{
		"server": {name: "server", args: serverArgs, ready: "jetfleet server ready", dir: logDir},
	}
	for _, step := range []string{"validate", "transform", "aggregate"} {
		procs[step] = &chaosProc{
			name: step, env: env, dir: logDir, ready: "jetfleet worker running",
			args: []string{
				"worker", "--log-format", "json", "--data-dir", dataDir,
				"--ack-wait", plan.AckWait.String(),
				// Kills in a row must not turn a good record into a dead
				// letter here; in production MaxDeliver is the poison guard.
				"--max-deliver", "1000", step,
			},
		}
	}
	order := []string{"server", "validate", "transform", "aggregate"}
	// Registered before anything starts, so a failed start leaks nothing.
	t.Cleanup(func() {
		for _, name := range slices.Backward(order) {
			procs[name].stop()
		}
		if t.Failed() {
			for _, name := range order {
				if procs[name].log != "" {
					t.Logf("last lines of %s:\n%s", procs[name].log, tail(procs[name].log, 40))
				}
			}
		}
	})
	procs["server"].start(t)
	// The fx table the transform step converts currencies with, as an
	// operator loads it before the first record.
	out, code := jf(t, env, "lookup", "load")
	require.Equal(t, 0, code, out)
	for _, name := range order[1:] {
		procs[name].start(t)
	}

	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.Name("fault-suite"))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(10*time.Second))
	require.NoError(t, err)
	beats := watchBeats(t, nc)

	span := time.Duration(float64(plan.Records) / plan.Rate * float64(time.Second))
	events := planEvents(rng, plan, span)
	pubStart := time.Now()
	pubDone := make(chan error, 1)
	go func() { pubDone <- publishPaced(ctx, js, in.msgs, in.offsets, plan.Rate) }()

	for _, ev := range events {
		if wait := time.Until(pubStart.Add(ev.at)); wait > 0 {
			time.Sleep(wait) // the planned moment: a point in time, not a condition
		}
		p := procs[ev.target]
		t.Logf("chaos %6.1fs: SIGKILL %s (pid %d), restart in %s", time.Since(pubStart).Seconds(), ev.target, p.cmd.Process.Pid, ev.pause)
		p.kill()
		rep.Kills[ev.target]++
		time.Sleep(ev.pause) // down time, part of the fault
		p.start(t)
		rep.Restarts++
	}
	select {
	case err := <-pubDone:
		require.NoError(t, err, "publish")
	case <-time.After(span + 5*time.Minute):
		t.Fatal("publisher did not finish")
	}
	t.Logf("published %d records in %s; waiting for the pipeline to drain", plan.Records, time.Since(pubStart).Round(time.Millisecond))

	idleCtx, cancel := context.WithTimeout(ctx, plan.Idle)
	defer cancel()
	_, err = supervisor.WaitIdle(idleCtx, js, supervisor.WaitIdleOptions{
		Poll:     250 * time.Millisecond,
		Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(supervisor.DirMarts(dataDir))},
	})
	require.NoError(t, err, "pipeline idle")

	verifyFaultRun(t, js, dataDir, in, rep)
	rep.WorkerRedel = beats.redelivered()
	rep.Took = time.Since(started)
	t.Log("\n" + rep.table())
	if path := os.Getenv("JETFLEET_CHAOS_SUMMARY"); path != "" {
		require.NoError(t, os.WriteFile(path, []byte(rep.table()), 0o600))
	}
	return rep
}

// publishPaced publishes msgs at rate records/s (offsets[i] records come
// before msgs[i]), window by window, and republishes what failed (the
// server may be down) until every message is acknowledged. Republishing
// is safe: Nats-Msg-Id drops a second copy.
func publishPaced(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, offsets []int, rate float64) error {
	const window = bulkSize
	start := time.Now()
	for from := 0; from < len(msgs); from += window {
		batch := msgs[from:min(from+window, len(msgs))]
		if due := start.Add(time.Duration(float64(offsets[from]) / rate * float64(time.Second))); time.Until(due) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Until(due)):
			}
		}
		for attempt := 1; len(batch) > 0; attempt++ {
			if attempt > 60 {
				return fmt.Errorf("%d messages still not acknowledged after %d attempts", len(batch), attempt-1)
			}
			batch = publishWindow(ctx, js, batch)
			if len(batch) > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		}
	}
	return nil
}

// publishWindow publishes batch and returns the messages not acknowledged.
func publishWindow(ctx context.Context, js jetstream.JetStream, batch []*nats.Msg) []*nats.Msg {
	futures := make([]jetstream.PubAckFuture, len(batch))
	var failed []*nats.Msg
	for i, m := range batch {
		// A fresh copy: a message that was sent carries state of its send.
		c := nats.NewMsg(m.Subject)
		c.Data, c.Header = m.Data, m.Header
		f, err := js.PublishMsgAsync(c, jetstream.WithStallWait(10*time.Second))
		if err != nil {
			failed = append(failed, m)
			continue
		}
		futures[i] = f
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case <-f.Err():
			failed = append(failed, batch[i])
		case <-ctx.Done():
			return batch
		}
	}
	return failed
}

// beatWatch keeps each worker's last heartbeat; a killed worker's last
// beat holds its counters up to the beat before the kill.
type beatWatch struct {
	mu   sync.Mutex
	last map[string]subjects.Beat
}

func watchBeats(t *testing.T, nc *nats.Conn) *beatWatch {
	t.Helper()
	w := &beatWatch{last: map[string]subjects.Beat{}}
	sub, err := nc.Subscribe(subjects.Heartbeat("*", "*"), func(m *nats.Msg) {
		var b subjects.Beat
		if json.Unmarshal(m.Data, &b) != nil {
			return
		}
		w.mu.Lock()
		w.last[b.Worker+"/"+b.Consumer] = b
		w.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return w
}

func (w *beatWatch) redelivered() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for _, b := range w.last {
		n += b.Counters.Redelivered
	}
	return n
}

func verifyFaultRun(t *testing.T, js jetstream.JetStream, dataDir string, in generated, rep *faultReport) {
	t.Helper()
	ctx := t.Context()

	// Records, not messages: a bulk message holds many.
	var ingested int64
	for _, n := range streamKeys(t, js, subjects.StreamIngest, subjects.Ingest("orders")) {
		ingested += int64(n)
	}
	rep.Ingested = ingested
	rep.DupsServer = int64(rep.Published) - ingested

	// Every valid record reached JF_CLEAN, and nothing else did.
	cleanKeys := streamKeys(t, js, subjects.StreamClean, subjects.Clean("orders")+".>") // every partition
	var missing, extra []string
	for id := range in.valid {
		if cleanKeys[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id := range cleanKeys {
		if _, ok := in.valid[id]; !ok {
			extra = append(extra, id)
		}
	}
	require.Empty(t, missing, "%d valid records lost on the way to JF_CLEAN, e.g. %v", len(missing), missing[:min(len(missing), 10)])
	require.Empty(t, extra, "%d records in JF_CLEAN that are not valid, e.g. %v", len(extra), extra[:min(len(extra), 10)])

	// JF_DLQ holds exactly the invalid records, each once, with a reason.
	dead := dlqByOrderID(t, js)
	rep.DeadLettered = 0
	for _, n := range dead {
		rep.DeadLettered += n
	}
	require.Equal(t, in.invalid, dead, "JF_DLQ must hold exactly the invalid records, each once")

	progress, err := marts.ReadProgress(dataDir)
	require.NoError(t, err)
	var prog marts.Progress
	for _, p := range progress {
		if p.Dataset == "orders" {
			prog = p
		}
	}
	rep.Clean, rep.DupsKey = prog.Records, prog.Duplicates
	var copies int64
	for _, n := range cleanKeys {
		copies += int64(n - 1)
	}
	require.Equal(t, copies, rep.DupsKey, "the aggregator drops as duplicates exactly the extra copies JF_CLEAN holds")
	require.Equal(t, in.counts.Valid, prog.Records, "distinct records in the aggregator's state")
	require.Equal(t, in.counts.Duplicate, rep.DupsServer+rep.DupsKey,
		"duplicates: %d dropped by Nats-Msg-Id at publish + %d by key in the aggregator", rep.DupsServer, rep.DupsKey)
	require.Equal(t, int64(rep.Published), rep.Clean+int64(rep.DeadLettered)+rep.DupsServer+rep.DupsKey, "clean + dead + dups = published")

	rep.MartsChecked = verifyShopMarts(t, dataDir, in.valid)

	for _, step := range []subjects.Step{subjects.StepValidate, subjects.StepTransform, subjects.StepAggregate} {
		for _, name := range subjects.StepConsumerNames(step, "orders", subjects.DefaultPartitions) {
			cons, err := js.Consumer(ctx, subjects.StreamFor(step.Input), name)
			require.NoError(t, err)
			ci, err := cons.Info(ctx)
			require.NoError(t, err)
			if ci.Delivered.Consumer > ci.Delivered.Stream {
				rep.Redeliveries += ci.Delivered.Consumer - ci.Delivered.Stream
			}
		}
	}
}

// streamKeys counts the records of subject in stream by order_id.
func streamKeys(t *testing.T, js jetstream.JetStream, stream, subject string) map[string]int {
	t.Helper()
	keys := map[string]int{}
	for _, m := range embeddedtest.ReadStream(t, js, stream, subject) {
		for _, line := range bytes.Split(m.Data, []byte{'\n'}) {
			if len(bytes.TrimSpace(line)) > 0 {
				keys[orderIDOf(line)]++
			}
		}
	}
	return keys
}

// dlqByOrderID counts the dead letters by order_id (a digest for a record
// too broken to have one), checking each names its reason.
func dlqByOrderID(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, m := range embeddedtest.ReadStream(t, js, subjects.StreamDLQ) {
		require.NotEmpty(t, m.Header.Get(subjects.HeaderReason), "dead letter %q without a reason", m.Data)
		out[orderIDOf(m.Data)]++
	}
	return out
}

// fxUSD is examples/shop/pipeline.yaml's fx lookup: USD per unit.
var fxUSD = map[string]float64{"USD": 1.0, "EUR": 1.08, "GBP": 1.27}

// verifyShopMarts computes the shop marts in Go from the generated valid
// records (normalised as the pipeline's transform says) and compares them
// with what the aggregator wrote.
func verifyShopMarts(t *testing.T, dataDir string, valid map[string]bench.Order) []string {
	t.Helper()
	type daily struct {
		orders  int64
		revenue float64
	}
	type ltv struct {
		orders      int64
		revenue     float64
		first, last time.Time
	}
	days := map[[2]string]*daily{}
	customers := map[string]*ltv{}
	for _, o := range valid {
		amount, ok := o.Amount.(float64)
		require.True(t, ok, "valid order %s has a non-number amount %v", o.OrderID, o.Amount)
		rate, ok := fxUSD[strings.ToUpper(strings.TrimSpace(o.Currency))]
		require.True(t, ok, "valid order %s has currency %q", o.OrderID, o.Currency)
		ts, err := time.Parse(time.RFC3339, o.TS)
		require.NoError(t, err)
		ts = ts.UTC()
		usd := amount * rate
		k := [2]string{ts.Format(time.DateOnly), strings.ToUpper(strings.TrimSpace(o.Country))}
		d := days[k]
		if d == nil {
			d = &daily{}
			days[k] = d
		}
		d.orders++
		d.revenue += usd
		c := customers[o.CustomerID]
		if c == nil {
			c = &ltv{first: ts, last: ts}
			customers[o.CustomerID] = c
		}
		c.orders++
		c.revenue += usd
		if ts.Before(c.first) {
			c.first = ts
		}
		if ts.After(c.last) {
			c.last = ts
		}
	}

	eng, err := query.Open(t.Context(), query.Config{DataDir: dataDir})
	require.NoError(t, err)
	defer eng.Close()

	res, err := eng.Query(t.Context(), `SELECT CAST(day AS VARCHAR), country, CAST(orders AS BIGINT), CAST(revenue_usd AS DOUBLE), CAST(aov_usd AS DOUBLE) FROM daily_sales`)
	require.NoError(t, err)
	require.Len(t, res.Rows, len(days), "daily_sales rows")
	for _, row := range res.Rows {
		k := [2]string{row[0].(string), row[1].(string)}
		want := days[k]
		require.NotNil(t, want, "daily_sales has a row %v that no valid record makes", k)
		require.Equal(t, want.orders, row[2].(int64), "daily_sales %v orders", k)
		requireClose(t, want.revenue, row[3].(float64), "daily_sales %v revenue_usd", k)
		requireClose(t, want.revenue/float64(want.orders), row[4].(float64), "daily_sales %v aov_usd", k)
	}

	res, err = eng.Query(t.Context(), `SELECT customer_id, CAST(orders AS BIGINT), CAST(revenue_usd AS DOUBLE), epoch_us(first_order), epoch_us(last_order) FROM customer_ltv`)
	require.NoError(t, err)
	require.Len(t, res.Rows, len(customers), "customer_ltv rows")
	for _, row := range res.Rows {
		id := row[0].(string)
		want := customers[id]
		require.NotNil(t, want, "customer_ltv has customer %s that no valid record has", id)
		require.Equal(t, want.orders, row[1].(int64), "customer_ltv %s orders", id)
		requireClose(t, want.revenue, row[2].(float64), "customer_ltv %s revenue_usd", id)
		require.Equal(t, want.first.UnixMicro(), row[3].(int64), "customer_ltv %s first_order", id)
		require.Equal(t, want.last.UnixMicro(), row[4].(int64), "customer_ltv %s last_order", id)
	}
	return []string{fmt.Sprintf("daily_sales (%d rows)", len(days)), fmt.Sprintf("customer_ltv (%d rows)", len(customers))}
}

// requireClose compares sums to 1e-9 relative: their last bits depend on
// the order the records were added in.
func requireClose(t *testing.T, want, got float64, msgAndArgs ...any) {
	t.Helper()
	if math.Abs(want-got) > 1e-9*math.Max(1, math.Max(math.Abs(want), math.Abs(got))) {
		require.InDelta(t, want, got, 0, msgAndArgs...)
	}
}

// TestFaultsShort is the fault suite's quick run, part of `make test`:
// a few thousand records, each step killed once, the server killed once.
func TestFaultsShort(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts and kills processes for a minute")
	}
	rep := runFaults(t, faultPlan{
		Seed: 7, Records: 8000, Rate: 800, InvalidShare: 0.05, DuplicateShare: 0.03,
		KillsPerStep: 1, ServerKills: 1, Bulk: true, AckWait: 5 * time.Second, Idle: 3 * time.Minute,
	})
	require.Equal(t, 4, rep.Restarts)
}
