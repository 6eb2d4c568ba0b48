package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// smokeOrders are the eight records of the shared smoke test: 3 valid,
// 1 duplicate, 4 invalid.
const smokeOrders = `{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}
{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","country":"DE","ts":"2026-10-01T23:30:00-02:00"}
{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}
{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}
{"order_id":"s-5","customer_id":"c-3","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}
{"order_id":"s-6","customer_id":"c-3","amount":"7","currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}
this line is not json
{"order_id":"s-8","customer_id":"c-3","amount":7,"currency":"BTC","country":"US","ts":"2026-10-01T10:00:00Z"}
`

// TestShopThroughObjectStoreAndHTTPQuery runs the shop demo with its file
// uploaded to the landing object store, and reads the marts over HTTP.
func TestShopThroughObjectStoreAndHTTPQuery(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	dev := startDev(t, dataDir)
	file := filepath.Join(t.TempDir(), "orders.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(smokeOrders), 0o600))

	out, code := jf(t, dev.env, "publish", "--object", "--file", file, "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "uploaded orders/orders.ndjson")
	// The upload is in the object store, not yet in a stream: until the
	// ingest step has read it, the streams look idle to --wait-idle.
	embeddedtest.WaitFor(t, time.Minute, "the object's eight records in JF_INGEST", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest) >= 8 })
	out, code = jf(t, dev.env, "status", "--wait-idle", "60s")
	require.Equal(t, 0, code, out)

	out, code = jf(t, dev.env, "status", "--json")
	require.Equal(t, 0, code, out)
	var st struct {
		Steps []struct {
			Step string `json:"step"`
			DLQ  int    `json:"dlq"`
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &st), out)
	dlq := 0
	for _, s := range st.Steps {
		dlq += s.DLQ
	}
	// Ingested from a file, the repeated s-1 line has its own line-based
	// id; the aggregator counts it once by the dataset key.
	require.Equal(t, 4, dlq)

	q := url.Values{"q": {"SELECT strftime(day, '%Y-%m-%d') AS day, country, orders, printf('%.3f', revenue_usd) AS rev FROM daily_sales ORDER BY day, country"}, "format": {"csv"}}
	resp, err := http.Get("http://" + dev.http + "/query?" + q.Encode())
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	require.Equal(t, "day,country,orders,rev\n2026-10-01,US,1,10.000\n2026-10-02,DE,1,21.600\n2026-10-02,GB,1,6.985", strings.TrimSpace(strings.ReplaceAll(string(body), "\r", "")))

	out, code = jf(t, nil, "query", "--data-dir", dataDir, "--format", "csv", "SELECT customer_id, orders, printf('%.3f', revenue_usd) AS rev FROM customer_ltv ORDER BY customer_id")
	require.Equal(t, 0, code, out)
	require.Equal(t, "customer_id,orders,rev\nc-1,2,31.600\nc-2,1,6.985", strings.TrimSpace(strings.ReplaceAll(out, "\r", "")))
}
