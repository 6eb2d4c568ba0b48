package supervisor_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// rates reads per_minute and records_per_minute of validate/orders from
// the status document as a script would, as integers.
func (b *testBundle) rates(t *testing.T) (perMinute, records int64) {
	t.Helper()
	data, err := json.Marshal(b.snapshot(t))
	require.NoError(t, err)
	var doc struct {
		Steps []struct {
			Step             string `json:"step"`
			PerMinute        int64  `json:"per_minute"`
			RecordsPerMinute int64  `json:"records_per_minute"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal(data, &doc), "per_minute is an integer: %s", data)
	for _, s := range doc.Steps {
		if s.Step == "validate" {
			return s.PerMinute, s.RecordsPerMinute
		}
	}
	return -1, -1
}

// waitRates waits until status shows exactly these rates, then checks
// they hold for a few more supervisor writes (no overshoot later).
func (b *testBundle) waitRates(t *testing.T, perMinute, records int64) {
	t.Helper()
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if p, r := b.rates(t); p != perMinute || r != records {
			return fmt.Errorf("per_minute %d, records_per_minute %d; want %d, %d", p, r, perMinute, records)
		}
		return nil
	})
	// The next writes of the rate keep it: no overshoot later.
	kv, err := b.js.KeyValue(t.Context(), subjects.FleetBucket)
	require.NoError(t, err)
	w, err := kv.Watch(t.Context(), subjects.KeyRate(subjects.ConsumerName("validate", dataset)), jetstream.UpdatesOnly())
	require.NoError(t, err)
	defer func() { _ = w.Stop() }()
	for range 3 {
		e := embeddedtest.WaitOrTimeout(t, w.Updates(), 5*time.Second, "a rate written")
		var r struct {
			PerMinute int64 `json:"per_minute"`
			Records   int64 `json:"records_per_minute"`
		}
		require.NoError(t, json.Unmarshal(e.Value(), &r))
		require.Equal(t, [2]int64{perMinute, records}, [2]int64{r.PerMinute, r.Records}, "rates moved without acks")
	}
}

// ACKED/MIN is the messages acked in the last minute, counted from the
// workers' counters and never extrapolated: 8 acks in the first seconds
// show as 8 (not 39), 1,000 more as 1,008 right away (not 1), a bulk
// message as one message of its records; per_minute is an integer.
func TestRatePerMinuteCountsTheLastMinute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if p, _ := b.rates(t); p != 0 {
			return fmt.Errorf("per_minute %d before any record", p)
		}
		return nil
	})

	bodies := make([]string, 8)
	for i := range bodies {
		bodies[i] = `{"i":` + strconv.Itoa(i) + `}`
	}
	b.publish(t, subjects.Ingest(dataset), bodies...)
	b.waitRates(t, 8, 8)

	bodies = make([]string, 1000)
	for i := range bodies {
		bodies[i] = `{"j":` + strconv.Itoa(i) + `}`
	}
	b.publish(t, subjects.Ingest(dataset), bodies...)
	b.waitRates(t, 1008, 1008)

	m := nats.NewMsg(subjects.Ingest(dataset))
	m.Data = []byte(strings.TrimSuffix(strings.Repeat(`{"k":1}`+"\n", 100), "\n"))
	m.Header.Set(subjects.HeaderRecords, "100")
	m.Header.Set(subjects.HeaderMsgID, "bulk-1")
	_, err := b.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	b.waitRates(t, 1009, 1108)

	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, b.snapshot(t), supervisor.TextOptions{}))
	require.Regexp(t, `(?m)^validate +orders +\S+ +1 alive +0 +0 +0 +0 +1009 +1108$`, text.String())
}

// The window slides: acks older than it no longer count.
func TestRatePerMinuteWindowSlides(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, func(c *supervisor.Config) { c.RateWindow = 2 * time.Second })
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"a":2}`, `{"a":3}`)
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if p, _ := b.rates(t); p != 3 {
			return fmt.Errorf("per_minute %d, want 3", p)
		}
		return nil
	})
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if p, r := b.rates(t); p != 0 || r != 0 {
			return fmt.Errorf("per_minute %d, records %d: the acks are older than the window", p, r)
		}
		return nil
	})
}
