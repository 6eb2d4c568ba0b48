package alert_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

const ticksSpec = `
name: ticks
datasets:
  ticks:
    key: id
    schema:
      - {name: id, type: VARCHAR}
      - {name: sym, type: VARCHAR}
      - {name: price, type: DOUBLE}
      - {name: ts, type: TIMESTAMPTZ}
alerts:
  hot:
    dataset: ticks
    when: price > 100
    key: sym
    cooldown: 1m
    severity: critical
    message: "{{.sym}} at {{.price}}"
`

// tick is one generated clean record: symbol sym at second s of the
// generated hour, matching the rule when hot.
func tick(i int, sym string, s int, hot bool) (id string, data []byte) {
	price := 50.0
	if hot {
		price = 150
	}
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	id = fmt.Sprintf("%s-%d", sym, i)
	data, _ = json.Marshal(map[string]any{"id": id, "sym": sym, "price": price, "ts": t0.Add(time.Duration(s) * time.Second).Format(time.RFC3339)})
	return id, data
}

// TestRecordRuleFiresOncePerCooldownWindow publishes a generated stream:
// two symbols, a record every second for ten minutes, most of them above
// the threshold. With a one-minute cooldown per symbol, each symbol fires
// exactly once per minute of event time, and every other match is
// counted as suppressed. The worker is replaced halfway (cooldowns live in
// KV, not in memory) and the second half comes in bulk messages.
func TestRecordRuleFiresOncePerCooldownWindow(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	spec := parseSpec(t, ticksSpec)
	w := startAlertStep(t, nc, js, spec, "ticks")

	const seconds = 600
	matches := map[string]int{}
	publish := func(from, to int, bulk bool) {
		var lines [][]byte
		for s := from; s < to; s++ {
			for _, sym := range []string{"AAA", "BBB"} {
				hot := s%7 != 3 // some records do not match
				if hot {
					matches[sym]++
				}
				id, data := tick(s, sym, s, hot)
				if bulk {
					lines = append(lines, data)
					if len(lines) == 10 {
						m := &nats.Msg{Subject: subjects.CleanKey("ticks", subjects.KeyToken("ticks")), Data: subjects.JoinBulk(lines), Header: nats.Header{}}
						m.Header.Set(subjects.HeaderRecords, "10")
						m.Header.Set(subjects.HeaderMsgID, "bulk-"+id)
						_, err := js.PublishMsg(t.Context(), m)
						require.NoError(t, err)
						lines = nil
					}
					continue
				}
				_, err := js.Publish(t.Context(), subjects.CleanKey("ticks", subjects.KeyToken("ticks")), data, jetstream.WithMsgID(id))
				require.NoError(t, err)
			}
		}
		require.Empty(t, lines)
	}
	publish(0, seconds/2, false)
	embeddedtest.WaitFor(t, 60*time.Second, "first half handled", func() bool {
		return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamClean, "alert_ticks") == nil
	})
	workertest.StopWorker(t, w)
	startAlertStep(t, nc, js, spec, "ticks")
	publish(seconds/2, seconds, true)
	embeddedtest.WaitFor(t, 60*time.Second, "second half handled", func() bool {
		return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamClean, "alert_ticks") == nil
	})

	got := alerts(t, js, subjects.Alert("hot"))
	bySym := map[string][]time.Time{}
	suppressed := map[string]int64{}
	for _, a := range got {
		require.Equal(t, "critical", a.Severity)
		require.Equal(t, "record", a.Kind)
		require.Equal(t, a.Key+" at 150", a.Message)
		require.Contains(t, string(a.Context.Record), `"price":150`)
		bySym[a.Key] = append(bySym[a.Key], a.Time)
		suppressed[a.Key] += a.Suppressed
	}
	// The expected alerts: the first match, then the first match at least
	// a minute after the previous alert; the matches between are
	// reported with the next alert (the last ones are still pending).
	t0 := time.Date(2026, 10, 1, 9, 0, 0, 0, time.UTC)
	var want []time.Time
	var wantSuppressed int64
	last, pending := -60, int64(0)
	for s := range seconds {
		if s%7 == 3 {
			continue
		}
		if s >= last+60 {
			want = append(want, t0.Add(time.Duration(s)*time.Second))
			wantSuppressed += pending
			last, pending = s, 0
			continue
		}
		pending++
	}
	require.Len(t, want, seconds/60, "the generated stream has one window per minute")
	for _, sym := range []string{"AAA", "BBB"} {
		times := bySym[sym]
		require.Len(t, times, len(want), "%s: one alert per cooldown window", sym)
		for i, at := range times {
			require.True(t, at.Equal(want[i]), "%s alert %d at %s, want %s", sym, i, at, want[i])
		}
		require.Equal(t, wantSuppressed, suppressed[sym], sym)
		require.Equal(t, int64(matches[sym]), int64(len(times))+wantSuppressed+pending)
	}
}

// TestCooldownHoldsAcrossReplicas runs two replicas of the alert step on
// one consumer: records reach them in any order, yet no two alerts of a
// key are closer than the cooldown, and every match either fired or was
// counted as suppressed.
func TestCooldownHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	spec := parseSpec(t, strings.Replace(ticksSpec, "cooldown: 1m", "cooldown: 30s", 1))
	startAlertStep(t, nc, js, spec, "ticks")
	startAlertStep(t, nc, js, spec, "ticks")
	const n = 400
	for s := range n {
		id, data := tick(s, "AAA", s, true)
		_, err := js.Publish(t.Context(), subjects.CleanKey("ticks", subjects.KeyToken("ticks")), data, jetstream.WithMsgID(id))
		require.NoError(t, err)
	}
	embeddedtest.WaitFor(t, 60*time.Second, "stream handled", func() bool {
		return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamClean, "alert_ticks") == nil
	})
	got := alerts(t, js, subjects.Alert("hot"))
	require.NotEmpty(t, got)
	var fired []time.Time
	var suppressed int64
	for _, a := range got {
		fired = append(fired, a.Time)
		suppressed += a.Suppressed
	}
	for i := range fired {
		for j := range i {
			d := fired[i].Sub(fired[j]).Abs()
			require.GreaterOrEqual(t, d, 30*time.Second, "alerts at %s and %s", fired[j], fired[i])
		}
	}
	kv, err := js.KeyValue(t.Context(), subjects.AlertsBucket)
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), subjects.KeyCooldown("hot", "AAA"))
	require.NoError(t, err)
	var st struct {
		Suppressed int64 `json:"suppressed"`
	}
	require.NoError(t, json.Unmarshal(e.Value(), &st))
	require.Equal(t, int64(n), int64(len(got))+suppressed+st.Suppressed, "every match fired or was counted")
}

// TestRedeliveredRecordAlertsOnce: handling the same input again (a
// redelivery after a crash between the cooldown update and the ack)
// yields the same alert id, which JetStream stores once, and is not
// counted as suppressed.
func TestRedeliveredRecordAlertsOnce(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	step, err := alert.NewStep(t.Context(), alert.StepConfig{JS: js, Spec: parseSpec(t, ticksSpec), Dataset: "ticks"})
	require.NoError(t, err)
	handle := func(s int) []workers.Output {
		id, data := tick(s, "AAA", s, true)
		out, err := step.Handle(t.Context(), workers.Record{Data: data, Subject: subjects.Clean("ticks"), MsgID: id, Seq: uint64(s + 1), Delivered: 1})
		require.NoError(t, err)
		for _, o := range out {
			_, err := js.Publish(t.Context(), o.Subject, o.Data, jetstream.WithMsgID(o.MsgID))
			require.NoError(t, err)
		}
		return out
	}
	first := handle(0)
	require.Len(t, first, 1)
	again := handle(0)
	require.Len(t, again, 1, "a redelivered input fires again...")
	require.Equal(t, first[0].MsgID, again[0].MsgID, "...with the same id")
	require.Empty(t, handle(1), "inside the cooldown")
	require.Empty(t, handle(1), "a redelivery of a suppressed match")
	next := handle(61)
	require.Len(t, next, 1)
	got := alerts(t, js, subjects.AllAlerts)
	require.Len(t, got, 2, "JetStream stored the redelivered alert once")
	require.Equal(t, int64(1), got[1].Suppressed, "the redelivered suppressed match counted once")
}
