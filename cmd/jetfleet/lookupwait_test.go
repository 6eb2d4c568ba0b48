package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestWorkerTransformWaitsForItsLookupTable runs `jetfleet worker
// transform` on a pipeline whose lookup table is a CSV file nobody has
// loaded yet. Before, it dead-lettered every record (`missing: dlq`). Now
// the step waits: its log names the table and the command that loads it,
// /readyz says not ready and why, `status` shows the step waiting and
// `--wait-idle` does not call the fleet idle. After `jetfleet lookup load`
// the records published meanwhile are all transformed, none
// dead-lettered, and /readyz says ready.
func TestWorkerTransformWaitsForItsLookupTable(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	env := []string{"NATS_URL=" + srv.ClientURL()}

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fx.csv"), []byte("currency,rate\nUSD,1\nEUR,1.08\n"), 0o600))
	pipelineFile := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(pipelineFile, []byte(`name: fx
datasets:
  orders:
    key: order_id
    schema:
      - {name: order_id, type: VARCHAR}
      - {name: currency, type: VARCHAR}
      - {name: rate, type: DOUBLE}
    transform:
      - lookup: {table: fx, key: currency, fields: {rate: rate}, missing: dlq}
lookups:
  fx:
    key: currency
    csv: fx.csv
    types: {rate: number}
`), 0o600))

	sup := start(t, env, "supervisor", "--log-format", "json", "--http", "")
	embeddedtest.WaitFor(t, 30*time.Second, "supervisor started", func() bool { return strings.Contains(sup.out.String(), "supervisor started") })
	start(t, env, "worker", "--log-format", "json", "--pipeline", pipelineFile, "validate")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
	transform := start(t, env, "worker", "--log-format", "json", "--pipeline", pipelineFile, "--http", httpAddr, "transform")

	records := filepath.Join(dir, "orders.ndjson")
	var lines []string
	for i := range 6 {
		lines = append(lines, fmt.Sprintf(`{"order_id":"o-%d","currency":%q}`, i, []string{"USD", "EUR"}[i%2]))
	}
	require.NoError(t, os.WriteFile(records, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
	out, code := jf(t, env, "publish", "--file", records, "--id-field", "order_id", "jf.ingest.orders")
	require.Zero(t, code, out)

	hint := fmt.Sprintf("lookup table fx is empty: load it with `jetfleet lookup load --pipeline %s fx`", pipelineFile)
	hintJSON, err := json.Marshal(hint)
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 30*time.Second, "the transform says what it waits for", func() bool {
		return strings.Contains(transform.out.String(), `"waiting_for":`+string(hintJSON))
	})
	readyz := func() (int, string) {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	embeddedtest.WaitFor(t, 30*time.Second, "/readyz up", func() bool { code, _ := readyz(); return code != 0 })
	code, body := readyz()
	require.Equal(t, http.StatusServiceUnavailable, code, body)
	require.Equal(t, "not ready: transform/orders#1: "+hint+"\n", body)

	type statusDoc struct {
		Problems []string `json:"problems"`
		Steps    []struct {
			Step    string `json:"step"`
			State   string `json:"state"`
			Pending uint64 `json:"pending"`
			Waiting string `json:"waiting"`
		} `json:"steps"`
	}
	var doc statusDoc
	embeddedtest.WaitFor(t, 30*time.Second, "status shows the step waiting with the records validated", func() bool {
		out, code := jf(t, env, "status", "--json")
		require.Zero(t, code, out)
		doc = statusDoc{}
		require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
		for _, s := range doc.Steps {
			if s.Step == "transform" {
				return s.State == "waiting" && s.Pending == 6
			}
		}
		return false
	})
	require.Contains(t, doc.Problems, "transform/orders is not ready, it consumes nothing: "+hint)
	out, code = jf(t, env, "status", "--wait-idle", "2s")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "transform/orders: 6 pending, not consumed: the step waits ("+hint+")")
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ), "nothing dead-lettered while waiting")

	out, code = jf(t, env, "lookup", "load", "--pipeline", pipelineFile)
	require.Zero(t, code, out)
	require.Contains(t, out, "fx: 2 rows loaded")
	embeddedtest.WaitFor(t, 60*time.Second, "every record transformed", func() bool { return embeddedtest.StreamMsgs(t, js, subjects.StreamClean) == 6 })
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ), "none dead-lettered")
	code, body = readyz()
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, transform.out.String(), "ready: what the step waited for is there")
}
