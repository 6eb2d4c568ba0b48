package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

const alertsPipeline = `name: alerting
datasets:
  ticks:
    key: id
    schema:
      - {name: id, type: VARCHAR}
      - {name: sym, type: VARCHAR}
      - {name: price, type: DOUBLE}
      - {name: ts, type: TIMESTAMPTZ}
    validate:
      - {field: price, required: true, type: number}
marts:
  top_price:
    dataset: ticks
    sql: SELECT sym, max(price) AS top FROM ticks GROUP BY sym
    flush: {interval: 200ms}
webhooks:
  hook: {url: "%s", headers: {X-Test: "yes"}}
alerts:
  pricey:
    dataset: ticks
    when: price > 100
    key: sym
    cooldown: 1m
    message: "{{.sym}} at {{.price}}"
    webhooks: [hook]
  record_high:
    mart: top_price
    sql: SELECT sym, top FROM top_price WHERE top > 1000
    key: sym
    severity: critical
`

// TestAlertsThroughTheFleet runs `jetfleet dev` with record and mart
// rules and a webhook: records in, alerts in JF_ALERTS, each POSTed once,
// and `alerts ls --json` lists them.
func TestAlertsThroughTheFleet(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		keys []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		keys = append(keys, r.Header.Get("Idempotency-Key")+" "+r.Header.Get("X-Test"))
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	file := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(file, fmt.Appendf(nil, alertsPipeline, hook.URL), 0o600))
	out, code := jf(t, nil, "pipeline", "check", file)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "2 alert rule(s), 1 webhook target(s)")

	dev := startDev(t, filepath.Join(dir, "data"), "--pipeline", file)
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	// AAA is above 100 for 3 minutes of event time (one alert a minute),
	// BBB never; then AAA sets a record high that the mart rule sees.
	for s := range 180 {
		for _, sym := range []string{"AAA", "BBB"} {
			price := 50
			if sym == "AAA" {
				price = 150
			}
			data := fmt.Sprintf(`{"id":"%s-%d","sym":"%s","price":%d,"ts":"%s"}`, sym, s, sym, price, t0.Add(time.Duration(s)*time.Second).Format(time.RFC3339))
			_, err := dev.js.Publish(t.Context(), subjects.Ingest("ticks"), []byte(data), jetstream.WithMsgID(fmt.Sprintf("%s-%d", sym, s)))
			require.NoError(t, err)
		}
	}
	_, err := dev.js.Publish(t.Context(), subjects.Ingest("ticks"), []byte(`{"id":"AAA-high","sym":"AAA","price":5000,"ts":"2026-10-01T09:03:00Z"}`))
	require.NoError(t, err)

	embeddedtest.WaitFor(t, 2*time.Minute, "alerts", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamAlerts) >= 5 })
	out, code = jf(t, dev.env, "alerts", "ls", "--json")
	require.Equal(t, 0, code, out)
	var got []struct {
		Seq        uint64 `json:"seq"`
		ID         string `json:"id"`
		Rule       string `json:"rule"`
		Severity   string `json:"severity"`
		Key        string `json:"key"`
		Message    string `json:"message"`
		Suppressed int64  `json:"suppressed"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	byRule := map[string]int{}
	for _, a := range got {
		byRule[a.Rule]++
		require.Equal(t, "AAA", a.Key, "BBB never matches")
		require.Positive(t, a.Seq)
	}
	// 09:00, 09:01, 09:02 and the record high at 09:03 (price 5000 > 100).
	require.Equal(t, map[string]int{"pricey": 4, "record_high": 1}, byRule, out)

	out, code = jf(t, dev.env, "alerts", "ls", "--rule", "record_high")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "record_high")
	require.Contains(t, out, "critical")
	require.NotContains(t, out, "pricey")

	out, code = jf(t, dev.env, "alerts", "ls", "--since", "nonsense")
	require.Equal(t, 2, code, out)

	embeddedtest.WaitFor(t, time.Minute, "webhook deliveries", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(keys) >= 4
	})
	out, code = jf(t, dev.env, "status", "--wait-idle", "60s")
	require.Equal(t, 0, code, out)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, keys, 4, "each pricey alert POSTed once")
	seen := map[string]bool{}
	for _, k := range keys {
		require.True(t, strings.HasSuffix(k, " yes"), k)
		require.False(t, seen[k], "duplicate delivery %s", k)
		seen[k] = true
	}
	out, code = jf(t, dev.env, "status")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "alert")
	require.Contains(t, out, "webhook")
}

// TestAlertWorkerReplicaProcesses runs the alert step as two `jetfleet
// worker alert` processes sharing one consumer: the cooldown in KV holds
// between them (no two alerts of a key closer than the cooldown), and
// every match fired or was counted as suppressed.
func TestAlertWorkerReplicaProcesses(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	env := []string{"NATS_URL=" + srv.ClientURL()}
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	spec := strings.Replace(fmt.Sprintf(alertsPipeline, "http://127.0.0.1:1/unused"), "    webhooks: [hook]\n", "", 1)
	require.NoError(t, os.WriteFile(file, []byte(spec), 0o600))
	for range 2 {
		w := start(t, env, "worker", "--log-format", "json", "--pipeline", file, "alert")
		embeddedtest.WaitFor(t, 30*time.Second, "worker started", func() bool { return strings.Contains(w.out.String(), "worker started") })
	}
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	const n = 600 // ten minutes of ticks, all above the threshold
	for s := range n {
		data := fmt.Sprintf(`{"id":"t-%d","sym":"AAA","price":150,"ts":"%s"}`, s, t0.Add(time.Duration(s)*time.Second).Format(time.RFC3339))
		_, err := js.PublishAsync(subjects.CleanKey("ticks", subjects.KeyToken(fmt.Sprint("t-", s))), []byte(data), jetstream.WithMsgID(fmt.Sprint("t-", s)), jetstream.WithStallWait(30*time.Second))
		require.NoError(t, err)
	}
	<-js.PublishAsyncComplete()
	embeddedtest.CheckFor(t, 2*time.Minute, embeddedtest.PollEvery, func() error {
		return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamClean, subjects.ConsumerName("alert", "ticks"))
	})
	out, code := jf(t, env, "alerts", "ls", "--json", "--rule", "pricey")
	require.Equal(t, 0, code, out)
	var got []struct {
		Time       time.Time `json:"time"`
		Suppressed int64     `json:"suppressed"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.NotEmpty(t, got)
	require.LessOrEqual(t, len(got), 10, "at most one alert per minute of event time")
	var suppressed int64
	for i, a := range got {
		suppressed += a.Suppressed
		for _, b := range got[:i] {
			require.GreaterOrEqual(t, a.Time.Sub(b.Time).Abs(), time.Minute)
		}
	}
	kv, err := js.KeyValue(t.Context(), subjects.AlertsBucket)
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), subjects.KeyCooldown("pricey", "AAA"))
	require.NoError(t, err)
	var st struct {
		Suppressed int64 `json:"suppressed"`
	}
	require.NoError(t, json.Unmarshal(e.Value(), &st))
	require.Equal(t, int64(n), int64(len(got))+suppressed+st.Suppressed)
}

// TestAlertsTail follows alerts: --since replays the stored one first,
// then new alerts print as they are stored, one JSON object a line.
func TestAlertsTail(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	env := []string{"NATS_URL=" + srv.ClientURL()}
	pub := func(id string) {
		_, err := js.Publish(t.Context(), subjects.Alert("hot"), fmt.Appendf(nil, `{"id":%q,"rule":"hot","kind":"record","severity":"info","message":"m %s"}`, id, id), jetstream.WithMsgID(id))
		require.NoError(t, err)
	}
	pub("a-1")
	tail := start(t, env, "alerts", "tail", "--json", "--since", "1h", "--rule", "hot")
	embeddedtest.WaitFor(t, 30*time.Second, "replayed alert", func() bool { return strings.Contains(tail.out.String(), `"id":"a-1"`) })
	pub("a-2")
	embeddedtest.WaitFor(t, 30*time.Second, "new alert", func() bool { return strings.Contains(tail.out.String(), `"id":"a-2"`) })
	lines := strings.Split(strings.TrimSpace(tail.out.String()), "\n")
	require.Len(t, lines, 2, tail.out.String())
	var a struct {
		Seq  uint64 `json:"seq"`
		Rule string `json:"rule"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[1]), &a))
	require.Equal(t, uint64(2), a.Seq)
	require.Equal(t, "hot", a.Rule)
}
