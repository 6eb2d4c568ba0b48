package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestBooksFlagRecordsInNoneOfThem runs a fleet of processes (supervisor,
// validate, transform, aggregate) on the passthrough pipeline and loses
// two records on purpose: one terminated as if its worker had
// dead-lettered it (it did not), one deleted from JF_VALID before the
// transform step read it. `status --wait-idle` must not call the fleet
// idle, and must name the books; `status --json` and the screen show
// published = clean + dead-lettered + duplicates + what is in none, in
// records (a bulk message of three counts three).
func TestBooksFlagRecordsInNoneOfThem(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	env := []string{"NATS_URL=" + srv.ClientURL()}
	dataDir := t.TempDir()
	sup := start(t, env, "supervisor", "--log-format", "json", "--http", "", "--data-dir", dataDir)
	embeddedtest.WaitFor(t, 30*time.Second, "supervisor started", func() bool { return strings.Contains(sup.out.String(), "supervisor started") })

	dir := t.TempDir()
	records := filepath.Join(dir, "orders.ndjson")
	require.NoError(t, os.WriteFile(records, []byte(strings.Join([]string{
		`{"order_id":"o-1","amount":1}`, `{"order_id":"o-2","amount":2}`, `{"order_id":"o-3","amount":3}`,
		`{"order_id":"o-4","amount":4}`, `{"order_id":"o-5","amount":5}`, `this line is not json`,
	}, "\n")+"\n"), 0o600))
	out, code := jf(t, env, "publish", "--file", records, "--id-field", "order_id", "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	bulk := filepath.Join(dir, "bulk.ndjson")
	require.NoError(t, os.WriteFile(bulk, []byte(`{"order_id":"o-6","amount":6}`+"\n"+`{"order_id":"o-7","amount":7}`+"\n"+`{"order_id":"o-2","amount":2}`+"\n"), 0o600))
	out, code = jf(t, env, "publish", "--file", bulk, "--id-field", "order_id", "--bulk", "3", "jf.ingest.orders")
	require.Equal(t, 0, code, out)

	// Lost #1: terminated with the reason a worker gives after writing the
	// dead letter itself, but no dead letter was written.
	ccfg, err := subjects.Consumer(subjects.StepValidate, "orders", subjects.ConsumerOptions{})
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	m := <-batch.Messages()
	require.NotNil(t, m)
	require.Contains(t, string(m.Data()), `"o-1"`)
	require.NoError(t, m.TermWithReason(subjects.TermReasonDeadLettered+"pretend"))

	start(t, env, "worker", "--log-format", "json", "--pipeline", passthrough, "validate")
	embeddedtest.WaitFor(t, time.Minute, "validate drained", func() bool { return drained(t.Context(), js, subjects.StreamIngest, "validate_orders") })

	// Lost #2: o-5 leaves JF_VALID before the transform step reads it.
	valid, err := js.Stream(t.Context(), subjects.StreamValid)
	require.NoError(t, err)
	deleted := false
	for seq := uint64(1); seq <= valid.CachedInfo().State.LastSeq; seq++ {
		rm, err := valid.GetMsg(t.Context(), seq)
		require.NoError(t, err)
		if strings.Contains(string(rm.Data), `"o-5"`) && rm.Header.Get(subjects.HeaderRecords) == "" {
			require.NoError(t, valid.DeleteMsg(t.Context(), seq))
			deleted = true
		}
	}
	require.True(t, deleted, "o-5 in JF_VALID")

	start(t, env, "worker", "--log-format", "json", "--pipeline", passthrough, "transform")
	start(t, env, "worker", "--log-format", "json", "--pipeline", passthrough, "--data-dir", dataDir, "aggregate")

	const books = "orders: 2 record(s) unaccounted: published 9 = clean 5 + dead-lettered 1 + duplicates 1 + 2 in none of them"
	type statusDoc struct {
		Healthy  bool     `json:"healthy"`
		Problems []string `json:"problems"`
		Balance  []struct {
			Dataset      string           `json:"dataset"`
			State        string           `json:"state"`
			Published    int64            `json:"published"`
			Clean        int64            `json:"clean"`
			DeadLettered int64            `json:"dead_lettered"`
			DeadByStep   map[string]int64 `json:"dead_by_step"`
			Duplicates   int64            `json:"duplicates"`
			InFlight     int64            `json:"in_flight"`
			Unaccounted  int64            `json:"unaccounted"`
		} `json:"balance"`
	}
	var doc statusDoc
	embeddedtest.WaitFor(t, time.Minute, "the books settled", func() bool {
		out, code = jf(t, env, "status", "--json")
		require.Equal(t, 0, code, out)
		doc = statusDoc{}
		require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		return len(doc.Balance) == 1 && doc.Balance[0].State != "in_flight" && doc.Balance[0].State != "unknown"
	})
	out, code = jf(t, env, "status", "--wait-idle", "3s")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "not idle after 3s: "+books)

	require.False(t, doc.Healthy)
	require.Contains(t, doc.Problems, books)
	require.Len(t, doc.Balance, 1)
	b := doc.Balance[0]
	require.Equal(t, "orders", b.Dataset)
	require.Equal(t, "unaccounted", b.State)
	require.Equal(t, [6]int64{9, 5, 1, 1, 0, 2}, [6]int64{b.Published, b.Clean, b.DeadLettered, b.Duplicates, b.InFlight, b.Unaccounted})
	require.Equal(t, map[string]int64{"validate": 1}, b.DeadByStep)

	out, code = jf(t, env, "status")
	require.Equal(t, 0, code, out)
	require.Regexp(t, `(?m)^orders +9 +5 +1 +1 +0 +2 +unaccounted$`, out)
	require.Contains(t, out, "UNHEALTHY: "+books)
}
