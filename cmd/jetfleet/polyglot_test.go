package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// sentimentDir is the JavaScript step of the feedback example.
var sentimentDir, _ = filepath.Abs(filepath.Join("..", "..", "examples", "feedback", "sentiment"))

// TestJSContractMatchesGo runs the example's contract.js under node and
// compares what it derives with the Go wire contract: message ids (short,
// multi-byte and over the 128-byte limit, where both hash), consumer
// settings and bulk splitting.
func TestJSContractMatchesGo(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	type idCase struct {
		Upstream string `json:"upstream"`
		Step     string `json:"step"`
		Index    int    `json:"index"`
	}
	cases := []idCase{
		{"f-1", "transform", 0},
		{"f-1", "transform", 3},
		{"JF_VALID:42", "transform", 0},
		{"h:0123456789abcdef0123456789abcdef01234567", "validate", 1},
		{"ünïcödé-€-id", "transform", 0},
		{strings.Repeat("a", 118), "transform", 0},     // 128 bytes: kept
		{strings.Repeat("a", 119), "transform", 0},     // 129 bytes: hashed
		{strings.Repeat("a", 116), "transform", 1},     // 128 with "#1": kept
		{strings.Repeat("€", 39), "transform", 0},      // 117 + 10 bytes: kept
		{strings.Repeat("€", 40), "transform", 0},      // 130 bytes in 50 characters: hashed
		{strings.Repeat("x", 300), "dlq.transform", 7}, // a dead letter id
	}
	in, err := json.Marshal(cases)
	require.NoError(t, err)
	script := `
const c = require(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
const hdr = (v) => ({ get: (k) => (k === "Jf-Records" ? v : "") });
const split = (h, s) => c.splitBulk(h, Buffer.from(s)).records.map((r) => r.toString());
console.log(JSON.stringify({
  ids: cases.map((k) => c.deriveMsgId(k.upstream, k.step, k.index)),
  dlq: c.deadLetterMsgId("f-9", "transform", 2),
  dlqWhole: c.deadLetterMsgId("f-9", "transform", -1),
  seq: c.sequenceMsgId("JF_VALID", 77),
  consumer: c.consumerConfig("transform", "feedback"),
  bulk: split(hdr("3"), '{"a":1}\r\n\n{"a":2}\n  \n{"a":3}\n'),
  single: split(hdr(""), '{"a":1}\n{"a":2}'),
}));`
	out, err := exec.CommandContext(t.Context(), "node", "-e", script, filepath.Join(sentimentDir, "contract.js"), string(in)).CombinedOutput()
	require.NoError(t, err, "node: %s", out)
	var got struct {
		IDs      []string       `json:"ids"`
		DLQ      string         `json:"dlq"`
		DLQWhole string         `json:"dlqWhole"`
		Seq      string         `json:"seq"`
		Consumer map[string]any `json:"consumer"`
		Bulk     []string       `json:"bulk"`
		Single   []string       `json:"single"`
	}
	require.NoError(t, json.Unmarshal(out, &got), "%s", out)
	for i, c := range cases {
		want := subjects.DeriveMsgID(c.Upstream, c.Step, c.Index)
		require.Equal(t, want, got.IDs[i], "case %d: %d-byte upstream", i, len(c.Upstream))
	}
	require.True(t, strings.HasPrefix(got.IDs[6], "h:"), "a 129-byte id is hashed")
	require.False(t, strings.HasPrefix(got.IDs[8], "h:"), "127 bytes are kept")
	require.True(t, strings.HasPrefix(got.IDs[9], "h:"), "the limit counts bytes, not characters")
	require.Equal(t, subjects.DeadLetterMsgID("f-9", "transform", 2), got.DLQ)
	require.Equal(t, subjects.DeadLetterMsgID("f-9", "transform", subjects.WholeMessage), got.DLQWhole)
	require.Equal(t, subjects.SequenceMsgID("JF_VALID", 77), got.Seq)

	// The consumer settings: what both sides create-or-update must match,
	// or a Go and a JS replica of a step would rewrite each other's consumer.
	want, err := subjects.Consumer(subjects.StepTransform, "feedback", subjects.ConsumerOptions{})
	require.NoError(t, err)
	wantJSON, err := json.Marshal(want)
	require.NoError(t, err)
	var wantMap map[string]any
	require.NoError(t, json.Unmarshal(wantJSON, &wantMap))
	for _, k := range []string{"durable_name", "description", "filter_subject", "deliver_policy", "ack_policy", "ack_wait", "max_deliver", "max_ack_pending", "max_waiting", "metadata"} {
		require.Equal(t, wantMap[k], got.Consumer[k], "consumer field %s", k)
	}

	records, bulk := subjects.SplitBulk(nats.Header{subjects.HeaderRecords: {"3"}}, []byte("{\"a\":1}\r\n\n{\"a\":2}\n  \n{\"a\":3}\n"))
	require.True(t, bulk)
	var goBulk []string
	for _, r := range records {
		goBulk = append(goBulk, string(r))
	}
	require.Equal(t, goBulk, got.Bulk)
	require.Equal(t, []string{"{\"a\":1}\n{\"a\":2}"}, got.Single, "without Jf-Records the body is one record")
}

// nodeProc is the JavaScript step, run by a test.
type nodeProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

func startNode(t *testing.T, dir string, env []string) *nodeProc {
	t.Helper()
	cmd := exec.Command("node", "sentiment.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	p := &nodeProc{cmd: cmd, out: newSyncBuffer(), done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	require.NoError(t, cmd.Start())
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		if t.Failed() {
			t.Logf("output of node sentiment.js:\n%s", p.out.String())
		}
	})
	return p
}

// TestPolyglotFeedbackPipeline runs the feedback example: jetfleet dev
// validates and aggregates, the JavaScript step (installed with npm ci from
// its lock file) is the transform step. Its output reaches the marts, its
// dead letters carry the contract's headers, status lists it from its
// heartbeats, and an input whose output is already stored is not doubled.
func TestPolyglotFeedbackPipeline(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs npm packages")
	}
	dir := installSentiment(t)

	pipelineFile, err := filepath.Abs(filepath.Join("..", "..", "examples", "feedback", "pipeline.yaml"))
	require.NoError(t, err)
	dataDir := t.TempDir()
	dev := startDev(t, dataDir, "--pipeline", pipelineFile)
	require.NotContains(t, dev.proc.out.String(), `"step":"transform"`, "the fleet runs no Go transform for an external step")

	wout, code := jf(t, dev.env, "worker", "--pipeline", pipelineFile, "transform")
	require.Equal(t, 2, code, wout)
	require.Contains(t, wout, "external_steps hands it to a program outside jetfleet for feedback")

	const jsWorker = "js-sentiment-test"
	js := startNode(t, dir, []string{"NATS_URL=" + dev.url, "JF_WORKER_ID=" + jsWorker, "JF_HEARTBEAT_MS=1000"})
	embeddedtest.WaitFor(t, 30*time.Second, "JS step started", func() bool { return strings.Contains(js.out.String(), "worker started") })

	// 60 valid records in record mode, 3 the step must dead-letter (no
	// text, text not a string, no words), 1 that validation rejects.
	var buf bytes.Buffer
	sentiments := map[string]string{}
	texts := []struct{ text, sentiment string }{
		{"Great service, fast and friendly!", "positive"},
		{"The app crashed and support was rude.", "negative"},
		{"Order 1234 arrived on Tuesday.", "neutral"},
		{"Not good at all.", "negative"},
	}
	for i := range 60 {
		tc := texts[i%len(texts)]
		id := fmt.Sprintf("fb-%03d", i)
		sentiments[id] = tc.sentiment
		fmt.Fprintf(&buf, `{"feedback_id":%q,"customer_id":"c-%d","channel":" Email ","ts":"2026-10-0%dT10:00:00+02:00","text":%q}`+"\n", id, i%7, 1+i%3, tc.text)
	}
	buf.WriteString(`{"feedback_id":"bad-1","customer_id":"c-1","channel":"app","ts":"2026-10-01T10:00:00Z"}` + "\n")
	buf.WriteString(`{"feedback_id":"bad-2","customer_id":"c-1","channel":"app","ts":"2026-10-01T10:00:00Z","text":42}` + "\n")
	buf.WriteString(`{"feedback_id":"bad-3","customer_id":"c-1","channel":"app","ts":"2026-10-01T10:00:00Z","text":"!!! ???"}` + "\n")
	buf.WriteString(`{"feedback_id":"bad-4","customer_id":"c-1","channel":"fax","ts":"2026-10-01T10:00:00Z","text":"fine"}` + "\n")
	file := filepath.Join(t.TempDir(), "feedback.ndjson")
	require.NoError(t, os.WriteFile(file, buf.Bytes(), 0o600))
	out2, code := jf(t, dev.env, "publish", "--file", file, "--id-field", "feedback_id", "jf.ingest.feedback")
	require.Equal(t, 0, code, out2)

	// A bulk message of 4 records, one without text: the step dead-letters
	// that record with its index and publishes the other 3 as one message.
	buf.Reset()
	for i := range 4 {
		text := fmt.Sprintf(`,"text":"lovely, thank you %d"`, i)
		if i == 2 {
			text = ""
		}
		fmt.Fprintf(&buf, `{"feedback_id":"bulk-%d","customer_id":"c-b","channel":"chat","ts":"2026-10-03T10:00:00Z"%s}`+"\n", i, text)
		if i != 2 {
			sentiments[fmt.Sprintf("bulk-%d", i)] = "positive"
		}
	}
	bulkFile := filepath.Join(t.TempDir(), "bulk.ndjson")
	require.NoError(t, os.WriteFile(bulkFile, buf.Bytes(), 0o600))
	out2, code = jf(t, dev.env, "publish", "--file", bulkFile, "--id-field", "feedback_id", "--bulk", "4", "jf.ingest.feedback")
	require.Equal(t, 0, code, out2)

	// An input whose output is already in JF_CLEAN, as after a crash between
	// publish and ack: the step's output carries the same derived id, so the
	// server drops it and the record is stored once.
	redo := nats.NewMsg(subjects.Valid("feedback"))
	redo.Data = []byte(`{"feedback_id":"redo-1","customer_id":"c-r","channel":"app","ts":"2026-10-01T12:00:00Z","text":"great"}`)
	redo.Header.Set(subjects.HeaderMsgID, "redo-1/validate")
	stored := nats.NewMsg(subjects.Clean("feedback"))
	stored.Data = []byte(`{"feedback_id":"redo-1","customer_id":"c-r","channel":"app","ts":"2026-10-01T12:00:00Z","text":"great","score":1,"sentiment":"positive","words":1}`)
	stored.Header.Set(subjects.HeaderMsgID, subjects.DeriveMsgID("redo-1/validate", "transform", 0))
	_, err = dev.js.PublishMsg(t.Context(), stored)
	require.NoError(t, err)
	_, err = dev.js.PublishMsg(t.Context(), redo)
	require.NoError(t, err)
	sentiments["redo-1"] = "positive"

	out2, code = jf(t, dev.env, "status", "--wait-idle", "90s")
	require.Equal(t, 0, code, out2)

	// Every valid record is in JF_CLEAN exactly once as the JavaScript
	// step published it (without a key token): 60 records, 1 bulk message
	// of 3, and redo-1 once; and once more with its key token, from rekey.
	clean, err := dev.js.Stream(t.Context(), subjects.StreamClean)
	require.NoError(t, err)
	info, err := clean.Info(t.Context(), jetstream.WithSubjectFilter(subjects.Clean("feedback")+".>"))
	require.NoError(t, err)
	var keyed uint64
	for _, n := range info.State.Subjects {
		keyed += n
	}
	info, err = clean.Info(t.Context(), jetstream.WithSubjectFilter(subjects.Clean("feedback")))
	require.NoError(t, err)
	bare := info.State.Subjects[subjects.Clean("feedback")]
	require.Equal(t, uint64(60+1+1), bare)
	require.GreaterOrEqual(t, keyed, uint64(60+1+1))
	require.LessOrEqual(t, keyed, uint64(60+3+1), "the bulk message split by partition at most")
	require.Equal(t, bare+keyed, embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean))

	// The marts hold the JavaScript step's output next to Go's validation.
	out2, code = jf(t, nil, "query", "--data-dir", dataDir, "--format", "json", "SELECT feedback_id, sentiment, channel, strftime(timezone('UTC', ts), '%H') AS hour FROM feedback ORDER BY feedback_id")
	require.Equal(t, 0, code, out2)
	var rows []struct {
		ID        string `json:"feedback_id"`
		Sentiment string `json:"sentiment"`
		Channel   string `json:"channel"`
		Hour      string `json:"hour"`
	}
	require.NoError(t, json.Unmarshal([]byte(out2), &rows), out2)
	got := map[string]string{}
	for _, r := range rows {
		got[r.ID] = r.Sentiment
		if strings.HasPrefix(r.ID, "fb-") {
			require.Equal(t, "email", r.Channel, "channel normalised by the JS step")
			require.Equal(t, "08", r.Hour, "ts in UTC")
		}
	}
	require.Equal(t, sentiments, got)
	out2, code = jf(t, nil, "query", "--data-dir", dataDir, "--format", "csv", "SELECT sum(feedback), sum(positive), sum(negative), sum(neutral) FROM sentiment_daily")
	require.Equal(t, 0, code, out2)
	require.Contains(t, out2, "64,19,30,15", "15 positive + 3 bulk + redo, 30 negative, 15 neutral")

	// Dead letters: the step's own, with the contract's headers and reasons.
	dls := embeddedtest.ReadStream(t, dev.js, subjects.StreamDLQ, subjects.DeadLetter("transform", "feedback"))
	require.Len(t, dls, 4)
	reasons := map[string]string{}
	for _, m := range dls {
		h := m.Header
		var rec struct {
			ID string `json:"feedback_id"`
		}
		require.NoError(t, json.Unmarshal(m.Data, &rec))
		reasons[rec.ID] = h.Get(subjects.HeaderReason)
		require.Equal(t, "transform", h.Get(subjects.HeaderStep))
		require.Equal(t, jsWorker, h.Get(subjects.HeaderWorker))
		require.Equal(t, subjects.StreamValid, h.Get(subjects.HeaderOrigStream))
		require.Equal(t, subjects.Valid("feedback"), h.Get(subjects.HeaderOrigSubject))
		require.Equal(t, "transform_feedback", h.Get(subjects.HeaderConsumer))
		require.Equal(t, "1", h.Get(subjects.HeaderDeliveries))
		require.NotEmpty(t, h.Get(subjects.HeaderOrigSeq))
		require.NotEmpty(t, h.Get(subjects.HeaderFailedAt))
		if rec.ID == "bulk-2" {
			require.Equal(t, "2", h.Get(subjects.HeaderRecordIndex))
			require.Equal(t, subjects.DeadLetterMsgID(h.Get(subjects.HeaderOrigMsgID), "transform", 2), h.Get(subjects.HeaderMsgID))
		} else {
			require.Empty(t, h.Get(subjects.HeaderRecordIndex))
			require.Equal(t, subjects.DeadLetterMsgID(h.Get(subjects.HeaderOrigMsgID), "transform", 0), h.Get(subjects.HeaderMsgID))
		}
	}
	require.Equal(t, map[string]string{
		"bad-1":  "text missing: nothing to score",
		"bad-2":  "text is a number, want a string",
		"bad-3":  "text has no words to score",
		"bulk-2": "text missing: nothing to score",
	}, reasons)
	require.Len(t, embeddedtest.ReadStream(t, dev.js, subjects.StreamDLQ, subjects.DeadLetter("validate", "feedback")), 1, "bad-4 stopped at validation")

	// status --json lists the JavaScript worker from its heartbeats.
	out2, code = jf(t, dev.env, "status", "--json")
	require.Equal(t, 0, code, out2)
	var st struct {
		Steps []struct {
			Step    string `json:"step"`
			Dataset string `json:"dataset"`
			DLQ     int    `json:"dlq"`
			Workers []struct {
				ID       string `json:"id"`
				Liveness string `json:"liveness"`
				Version  string `json:"version"`
				Counters struct {
					Acked        int64 `json:"acked"`
					Outputs      int64 `json:"outputs"`
					DeadLettered int64 `json:"dead_lettered"`
				} `json:"counters"`
			} `json:"workers"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(out2), &st), out2)
	var seen bool
	for _, s := range st.Steps {
		if s.Step != "transform" || s.Dataset != "feedback" {
			continue
		}
		require.Equal(t, 4, s.DLQ)
		require.Len(t, s.Workers, 1)
		w := s.Workers[0]
		require.Equal(t, jsWorker, w.ID)
		require.Equal(t, "alive", w.Liveness)
		require.Contains(t, w.Version, "feedback-sentiment")
		embeddedtest.WaitFor(t, 30*time.Second, "counters in a heartbeat", func() bool { return jsCounters(t, dev, jsWorker) == [3]int64{65, 64, 4} })
		seen = true
	}
	require.True(t, seen, "status has the transform/feedback step: %s", out2)

	// Micro discovery lists the JS step next to the Go members.
	nc, _ := embeddedtest.Connect(t, dev.url)
	var services map[string][]map[string]string
	embeddedtest.WaitFor(t, 30*time.Second, "every member listed", func() bool {
		services = microServices(t, nc)
		return len(services["jetfleet-transform"]) == 1 && len(services["jetfleet-validate"]) == 1 &&
			len(services["jetfleet-aggregate"]) == subjects.DefaultPartitions && len(services["jetfleet-supervisor"]) == 1 // a worker per partition
	})
	require.Equal(t, jsWorker, services["jetfleet-transform"][0]["worker"])
	require.Equal(t, "javascript", services["jetfleet-transform"][0]["language"])
	embeddedtest.WaitFor(t, 30*time.Second, "stats of the JS step", func() bool {
		stats := embeddedtest.MicroDiscover(t, nc, micro.StatsVerb, "jetfleet-transform", time.Second)
		return len(stats) == 1 && strings.Contains(string(stats[0]), `"acked":65`)
	})

	// A transient failure: JF_CLEAN refuses the output (too big), so the
	// step naks with backoff, and on the last delivery dead-letters the
	// whole message and terminates it.
	clean, err = dev.js.Stream(t.Context(), subjects.StreamClean)
	require.NoError(t, err)
	ccfg := clean.CachedInfo().Config
	ccfg.MaxMsgSize = 64
	_, err = dev.js.UpdateStream(t.Context(), ccfg)
	require.NoError(t, err)
	big := nats.NewMsg(subjects.Valid("feedback"))
	big.Data = []byte(`{"feedback_id":"big-1","customer_id":"c-b","channel":"app","ts":"2026-10-01T12:00:00Z","text":"great and friendly, a long and happy text"}`)
	big.Header.Set(subjects.HeaderMsgID, "big-1/validate")
	_, err = dev.js.PublishMsg(t.Context(), big)
	require.NoError(t, err)
	var bigDL []*jetstream.RawStreamMsg
	embeddedtest.WaitFor(t, time.Minute, "whole-message dead letter after max deliveries", func() bool {
		bigDL = slices.DeleteFunc(embeddedtest.ReadStream(t, dev.js, subjects.StreamDLQ, subjects.DeadLetter("transform", "feedback")), func(m *jetstream.RawStreamMsg) bool {
			return m.Header.Get(subjects.HeaderOrigMsgID) != "big-1/validate"
		})
		return len(bigDL) > 0
	})
	require.Len(t, bigDL, 1)
	h := bigDL[0].Header
	require.Contains(t, h.Get(subjects.HeaderReason), "gave up after 5 deliveries: ")
	require.Equal(t, "5", h.Get(subjects.HeaderDeliveries))
	require.Equal(t, jsWorker, h.Get(subjects.HeaderWorker), "the step wrote it, not the supervisor")
	require.Equal(t, subjects.DeadLetterMsgID("big-1/validate", "transform", 0), h.Get(subjects.HeaderMsgID))
	require.Equal(t, big.Data, bigDL[0].Data)
	embeddedtest.CheckFor(t, 30*time.Second, embeddedtest.PollEvery, func() error { // the message is settled
		return embeddedtest.ConsumerIdle(t.Context(), dev.js, subjects.StreamValid, "transform_feedback")
	})

	// jetfleet ctl steers the JS step like a Go worker.
	out2, code = jf(t, dev.env, "ctl", "pause", "transform")
	require.Equal(t, 0, code, out2)
	require.Regexp(t, jsWorker+`\s+transform\s+feedback\s+paused\s+0`, out2)
	out2, code = jf(t, dev.env, "ctl", "drain", jsWorker)
	require.Equal(t, 0, code, out2)
	require.Regexp(t, jsWorker+`\s+transform\s+feedback\s+paused\s+0`, out2)
	out2, code = jf(t, dev.env, "ctl", "resume", "transform")
	require.Equal(t, 0, code, out2)
	require.Regexp(t, jsWorker+`\s+transform\s+feedback\s+running`, out2)

	// SIGTERM drains the JS step: it exits 0 and says goodbye.
	require.NoError(t, js.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-js.done:
		require.NoError(t, err)
		js.done <- err
	case <-time.After(15 * time.Second):
		t.Fatal("JS step still running 15s after SIGTERM")
	}
	require.Contains(t, js.out.String(), "worker stopped")
}

// installSentiment copies the JavaScript step to a temp dir and installs
// its packages there with npm ci from its lock file.
func installSentiment(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "contract.js", "score.js", "sentiment.js"} {
		b, err := os.ReadFile(filepath.Join(sentimentDir, f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o600))
	}
	install := exec.CommandContext(t.Context(), "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	out, err := install.CombinedOutput()
	require.NoError(t, err, "npm ci: %s", out)
	return dir
}

// jsCounters reads acked, outputs and dead_lettered of worker from status.
func jsCounters(t *testing.T, dev *devBundle, worker string) [3]int64 {
	t.Helper()
	out, code := jf(t, dev.env, "status", "--json")
	if code != 0 {
		return [3]int64{}
	}
	var st struct {
		Steps []struct {
			Workers []struct {
				ID       string                  `json:"id"`
				Counters subjects.WorkerCounters `json:"counters"`
			} `json:"workers"`
		} `json:"steps"`
	}
	if json.Unmarshal([]byte(out), &st) != nil {
		return [3]int64{}
	}
	for _, s := range st.Steps {
		for _, w := range s.Workers {
			if w.ID == worker {
				return [3]int64{w.Counters.Acked, w.Counters.Outputs, w.Counters.DeadLettered}
			}
		}
	}
	return [3]int64{}
}
