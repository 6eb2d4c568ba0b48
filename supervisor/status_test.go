package supervisor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// statusDoc mirrors the documented JSON (docs/status.md), so the test
// reads the document as a script would, not through the Go types.
type statusDoc struct {
	Healthy    bool     `json:"healthy"`
	Headline   string   `json:"headline"`
	Problems   []string `json:"problems"`
	Supervisor struct {
		Up bool   `json:"up"`
		ID string `json:"id"`
	} `json:"supervisor"`
	DeadLetters uint64 `json:"dead_letters"`
	Steps       []struct {
		Step        string  `json:"step"`
		Dataset     string  `json:"dataset"`
		Consumer    string  `json:"consumer"`
		Stream      string  `json:"stream"`
		State       string  `json:"state"`
		Pending     uint64  `json:"pending"`
		AckPending  int     `json:"ack_pending"`
		Redelivered int     `json:"redelivered"`
		DLQ         uint64  `json:"dlq"`
		Processed   int64   `json:"processed"`
		PerMinute   float64 `json:"per_minute"`
		Workers     []struct {
			ID       string `json:"id"`
			Host     string `json:"host"`
			Liveness string `json:"liveness"`
			State    string `json:"state"`
		} `json:"workers"`
	} `json:"steps"`
	Marts []struct {
		Name      string    `json:"name"`
		Rows      int64     `json:"rows"`
		UpdatedAt time.Time `json:"updated_at"`
	} `json:"marts"`
}

// status --json against a pipeline in a known state: validate ran (two
// records through, one dead letter), transform has a consumer and no
// worker (two pending).
func TestStatusJSONKnownState(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	h := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if strings.Contains(string(rec.Data), "bad") {
			return nil, workers.Permanentf("amount must be positive")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	w := workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, h))
	ccfg, err := subjects.Consumer(subjects.StepTransform, dataset, subjects.ConsumerOptions{})
	require.NoError(t, err)
	_, err = b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamValid, ccfg)
	require.NoError(t, err)
	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"bad":true}`, `{"a":2}`)

	updated := time.Date(2026, 10, 2, 8, 0, 0, 0, time.UTC)
	marts := supervisor.WithMarts(func(context.Context) ([]supervisor.MartStatus, error) {
		return []supervisor.MartStatus{{Name: "daily_sales", Dataset: dataset, Rows: 3, Partitions: 2, UpdatedAt: updated}}, nil
	})
	var doc statusDoc
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t, marts)
		data, err := json.Marshal(st)
		require.NoError(t, err)
		doc = statusDoc{}
		require.NoError(t, json.Unmarshal(data, &doc))
		if len(doc.Steps) != 2 || doc.Steps[0].DLQ != 1 || doc.Steps[1].Pending != 2 || doc.Steps[0].Processed != 3 || doc.Steps[0].AckPending != 0 || !doc.Supervisor.Up {
			return fmt.Errorf("not settled: %s", data)
		}
		return nil
	})
	v := doc.Steps[0]
	require.Equal(t, "validate", v.Step)
	require.Equal(t, dataset, v.Dataset)
	require.Equal(t, "validate_orders", v.Consumer)
	require.Equal(t, subjects.StreamIngest, v.Stream)
	require.Equal(t, "idle", v.State)
	require.Equal(t, uint64(0), v.Pending)
	require.Equal(t, 0, v.AckPending)
	require.Equal(t, 0, v.Redelivered)
	require.Equal(t, uint64(1), v.DLQ)
	require.Len(t, v.Workers, 1)
	require.Equal(t, w.ID(), v.Workers[0].ID)
	require.Equal(t, supervisor.LivenessAlive, v.Workers[0].Liveness)
	require.Equal(t, subjects.StateRunning, v.Workers[0].State)
	require.NotEmpty(t, v.Workers[0].Host)

	tr := doc.Steps[1]
	require.Equal(t, "transform", tr.Step)
	require.Equal(t, subjects.StreamValid, tr.Stream)
	require.Equal(t, "no_workers", tr.State)
	require.Equal(t, uint64(2), tr.Pending)
	require.Equal(t, 0, tr.AckPending)
	require.Equal(t, uint64(0), tr.DLQ)
	require.Empty(t, tr.Workers)

	require.Equal(t, uint64(1), doc.DeadLetters)
	require.True(t, doc.Supervisor.Up)
	require.Equal(t, "sup-test", doc.Supervisor.ID)
	require.False(t, doc.Healthy)
	require.Equal(t, []string{"transform/orders: 2 pending and no live worker"}, doc.Problems)
	require.Equal(t, "UNHEALTHY: transform/orders: 2 pending and no live worker", doc.Headline)
	require.Len(t, doc.Marts, 1)
	require.Equal(t, "daily_sales", doc.Marts[0].Name)
	require.Equal(t, int64(3), doc.Marts[0].Rows)
	require.True(t, updated.Equal(doc.Marts[0].UpdatedAt))

	st := b.snapshot(t)
	require.Equal(t, "transform/orders: 2 pending", st.Busy())
	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, st, supervisor.TextOptions{}))
	require.Contains(t, text.String(), "UNHEALTHY: transform/orders: 2 pending and no live worker")
	require.Regexp(t, `(?m)^validate +orders +idle +1 alive +0 +0 +0 +1 `, text.String())
	t.Log("\n" + text.String())
}

// Without a supervisor, status still answers from JetStream and says so.
func TestStatusWithoutSupervisor(t *testing.T) {
	t.Parallel()
	b := setup(t)
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	b.publish(t, subjects.Ingest(dataset), `{"a":1}`)
	st, err := supervisor.WaitIdle(t.Context(), b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	require.False(t, st.Supervisor.Up)
	require.False(t, st.Healthy)
	require.Contains(t, st.Headline, "supervisor is down")
	require.Equal(t, uint64(0), step(st, "validate", dataset).Pending)
}

// --wait-idle returns only when every stage is drained and the marts
// flushed what the aggregate consumer delivered.
func TestWaitIdleWaitsForMarts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	// Clean records carry a key token: the aggregate consumer reads jf.clean.<ds>.>.
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepTransform, workers.Passthrough(subjects.CleanKey(dataset, subjects.KeyToken("k")))))
	var consumed, flushed atomic.Uint64
	sink := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		for {
			cur := consumed.Load()
			if rec.Seq <= cur || consumed.CompareAndSwap(cur, rec.Seq) {
				return nil, nil
			}
		}
	})
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepAggregate, sink))
	martsFunc := func(context.Context) ([]supervisor.MartStatus, error) {
		return []supervisor.MartStatus{{Name: "daily_sales", Dataset: dataset, LastSeq: flushed.Load()}}, nil
	}
	opts := supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond, Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(martsFunc)}}

	bodies := make([]string, 50)
	for i := range bodies {
		bodies[i] = fmt.Sprintf(`{"i":%d}`, i)
	}
	b.publish(t, subjects.Ingest(dataset), bodies...)

	// Everything flows, but the mart has not flushed: not idle.
	var lastBusy atomic.Value
	ctx, cancel := context.WithTimeout(t.Context(), embeddedtest.Timeout(3*time.Second))
	defer cancel()
	o := opts
	o.ProgressFunc = func(_ *supervisor.Status, busy string) { lastBusy.Store(busy) }
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if b.streamMsgs(t, subjects.StreamClean, subjects.Clean(dataset)+".>") != 50 || consumed.Load() < 50 {
			return errors.New("not all through yet")
		}
		return nil
	})
	_, err := supervisor.WaitIdle(ctx, b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond, Snapshot: opts.Snapshot})
	require.ErrorIs(t, err, supervisor.ErrNotIdle)
	require.Contains(t, err.Error(), "mart daily_sales: flushed up to seq 0 of 50")

	flushed.Store(consumed.Load())
	st, err := supervisor.WaitIdle(t.Context(), b.js, o)
	require.NoError(t, err)
	require.Empty(t, st.Busy())
	for _, s := range st.Steps {
		require.Zero(t, s.Pending, s.Consumer)
		require.Zero(t, s.AckPending, s.Consumer)
	}
	require.Equal(t, uint64(50), b.streamMsgs(t, subjects.StreamClean, subjects.Clean(dataset)+".>"))
}

// A pending consumer keeps WaitIdle waiting and names it, in pipeline order.
func TestWaitIdleTimesOutNamingTheBusyStep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, s := range []subjects.Step{subjects.StepValidate, subjects.StepTransform} {
		ccfg, err := subjects.Consumer(s, dataset, subjects.ConsumerOptions{})
		require.NoError(t, err)
		_, err = b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamFor(s.Input), ccfg)
		require.NoError(t, err)
	}
	b.publish(t, subjects.Valid(dataset), `{"a":1}`)
	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"a":2}`)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := supervisor.WaitIdle(ctx, b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.ErrorIs(t, err, supervisor.ErrNotIdle)
	require.Equal(t, "fleet not idle: validate/orders: 2 pending", err.Error())
}

// The HTTP handler serves health, readiness, status and metrics.
func TestHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	sup := b.startSupervisor(t, nil)
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset))))
	h, err := supervisor.NewHandler(supervisor.HandlerConfig{JS: b.js, Supervisor: sup, Logger: b.log})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	get := func(path string) (int, string) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)
	code, _ = get("/readyz")
	require.Equal(t, http.StatusOK, code)
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		code, body := get("/status")
		require.Equal(t, http.StatusOK, code)
		var st supervisor.Status
		require.NoError(t, json.Unmarshal([]byte(body), &st))
		if s := step(&st, "validate", dataset); s == nil || len(s.Workers) == 0 {
			return errors.New("no worker yet")
		}
		return nil
	})
	code, body := get("/status?format=text")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "STEP")
	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `jetfleet_consumer_pending{dataset="orders",step="validate"} 0`)
	require.Contains(t, body, "jetfleet_supervisor_up 1")
	require.Contains(t, body, "jetfleet_worker_heartbeat_age_seconds{")
}

// A tree child that exceeds its restart intensity shows as failed.
func TestFailedChildInStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: b.log, BackoffMin: time.Millisecond, BackoffMax: time.Millisecond, MaxRestarts: 1})
	tree.Add("validate/orders#0", func(context.Context) error { return errors.New("bad handler config") })
	sup := b.startSupervisor(t, func(c *supervisor.Config) { c.Tree = tree })
	_ = sup
	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{})
	require.NoError(t, err)
	_, err = b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)
	require.ErrorIs(t, tree.Run(t.Context()), supervisor.ErrEscalated)

	// In process, from the tree; from anywhere, once the supervisor wrote it.
	st := b.snapshot(t, supervisor.WithTree(tree))
	require.Equal(t, "failed", step(st, "validate", dataset).State)
	embeddedtest.CheckFor(t, 3*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t)
		if s := step(st, "validate", dataset); s.State != "failed" {
			return fmt.Errorf("state %s", s.State)
		}
		require.Contains(t, st.Headline, "validate/orders failed")
		return nil
	})
}

// TestMartRebuildInStatus: a mart rebuilt from the lake keeps the fleet
// busy and says so; once written, status says when it was rebuilt.
func TestMartRebuildInStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rebuilt := now.Add(-90 * time.Second)
	st := &supervisor.Status{Time: now, Marts: []supervisor.MartStatus{
		{Name: "daily_sales", Dataset: "orders", Rows: 3, UpdatedAt: now.Add(-time.Hour), Rebuilding: "definition changed"},
		{Name: "customer_ltv", Dataset: "orders", Rows: 2, UpdatedAt: rebuilt, RebuiltAt: &rebuilt},
	}}
	require.Equal(t, "mart daily_sales: rebuilding from the lake (definition changed)", st.Busy())
	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, st, supervisor.TextOptions{}))
	require.Contains(t, text.String(), "rebuilding from the lake (definition changed)")
	require.Contains(t, text.String(), "rebuilt from the lake 1m30s ago")
}

// driftHandler is a transform handler whose schema contract kept a field
// outside the schema (note) on every record.
type driftHandler struct{ n atomic.Int64 }

func (h *driftHandler) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	h.n.Add(1)
	return []workers.Output{{Subject: subjects.Clean(dataset), Data: rec.Data}}, nil
}

func (h *driftHandler) ContractCounts() *subjects.ContractCounts {
	return &subjects.ContractCounts{Contract: "evolve", Fields: map[string]int64{"note": h.n.Load()}}
}

// TestContractDecisionsInStatus: what a step's schema contract did rides
// on its workers' heartbeats into status, per dataset and field.
func TestContractDecisionsInStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.startSupervisor(t, nil)
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepTransform, &driftHandler{}))
	b.publish(t, subjects.Valid(dataset), `{"a":1,"note":"x"}`, `{"a":2,"note":"y"}`)
	var st *supervisor.Status
	embeddedtest.CheckFor(t, 10*time.Second, embeddedtest.PollEvery, func() error {
		st = b.snapshot(t)
		for _, s := range st.Steps {
			if s.Step == subjects.StepTransform.Name && s.Contract != nil && s.Contract.Fields["note"] == 2 {
				return nil
			}
		}
		return fmt.Errorf("no contract counts yet: %+v", st.Steps)
	})
	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, st, supervisor.TextOptions{}))
	require.Regexp(t, `(?m)^orders +evolve +note +2 kept$`, text.String())
}
