package main_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

func shopOrder(id, customer string) string {
	return fmt.Sprintf(`{"order_id":%q,"customer_id":%q,"amount":10,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`, id, customer)
}

// TestBadInputSizesAndShapes: a 1 MB record goes all the way into a mart;
// a record over the server's max payload is refused at publish, naming its
// line, and the rest is published; 100000 levels of nesting and invalid
// UTF-8 are dead-lettered with their reason, and nothing crashes.
func TestBadInputSizesAndShapes(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir())

	bigCustomer := "c-" + strings.Repeat("x", 1<<20)
	lines := []string{
		shopOrder("b-1", "c-1"),
		shopOrder("b-2", bigCustomer),                                       // 1 MB: under the dev server's 8 MB
		shopOrder("b-3", "c-"+strings.Repeat("y", 9<<20)),                   // 9 MB: over it
		strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000), // 100000 levels
		`{"order_id":"b-5","customer_id":"c-` + "\xff\xfe" + `","amount":1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
		shopOrder("b-6", "c-6"),
	}
	file := filepath.Join(t.TempDir(), "orders.ndjson")
	require.NoError(t, os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600))

	out, code := jf(t, dev.env, "publish", "--file", file, "--id-field", "order_id", "jf.ingest.orders")
	require.Zero(t, code, out)
	require.Contains(t, out, "line 3 (order_id b-3): ", "the refused record is named by its line and id")
	require.Contains(t, out, "exceeds the server's max payload")
	require.Contains(t, out, "published 5 records in 5 messages to jf.ingest.orders: 0 duplicates (already stored), 1 rejected lines")

	out, code = jf(t, dev.env, "status", "--wait-idle", "180s")
	require.Zero(t, code, out)
	require.Equal(t, uint64(5), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest))
	require.Equal(t, uint64(3), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean))
	var reasons []string
	for _, m := range embeddedtest.ReadStream(t, dev.js, subjects.StreamDLQ) {
		reasons = append(reasons, m.Header.Get(subjects.HeaderReason))
	}
	require.Len(t, reasons, 2, "%q", reasons)
	joined := strings.Join(reasons, "\n")
	require.Contains(t, joined, "nested too deeply")
	require.Contains(t, joined, "not valid UTF-8")

	out, code = jf(t, nil, "query", "--data-dir", dev.dataDir, "--format", "csv",
		"SELECT count(*) AS n, max(length(customer_id)) AS longest FROM customer_ltv")
	require.Zero(t, code, out)
	require.Equal(t, fmt.Sprintf("n,longest\n3,%d\n", len(bigCustomer)), out)

	// The fleet is still healthy: a record published now goes through.
	require.NoError(t, os.WriteFile(file, []byte(shopOrder("b-7", "c-7")+"\n"), 0o600))
	out, code = jf(t, dev.env, "publish", "--file", file, "jf.ingest.orders")
	require.Zero(t, code, out)
	embeddedtest.WaitFor(t, 120*time.Second, "b-7 in the clean stream", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean) == 4 })
}

// TestBadInputFloodKeepsValidFlowing: 50000 invalid records with 2000 valid
// ones among them: every valid one reaches the marts, every invalid one the
// dead-letter stream, and the accounting adds up.
func TestBadInputFloodKeepsValidFlowing(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir())

	const invalid, valid = 50000, 2000
	var buf bytes.Buffer
	v := 0
	for i := range invalid {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&buf, "not json at all %d\n", i) // unique: identical lines share a message id
		case 1:
			fmt.Fprintf(&buf, `{"order_id":"bad-%d","customer_id":"c","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`+"\n", i)
		case 2:
			fmt.Fprintf(&buf, `{"order_id":"bad-%d","customer_id":"c","amount":"7","currency":"XXX","country":"USA","ts":"yesterday"}`+"\n", i)
		case 3:
			fmt.Fprintf(&buf, "[%d]\n", i)
		}
		if i%(invalid/valid) == 0 {
			buf.WriteString(shopOrder(fmt.Sprintf("ok-%d", v), fmt.Sprintf("c-%d", v%100)) + "\n")
			v++
		}
	}
	require.Equal(t, valid, v)
	file := filepath.Join(t.TempDir(), "flood.ndjson")
	require.NoError(t, os.WriteFile(file, buf.Bytes(), 0o600))

	out, code := jf(t, dev.env, "publish", "--file", file, "jf.ingest.orders")
	require.Zero(t, code, out)
	require.Contains(t, out, fmt.Sprintf("published %d records in %d messages to jf.ingest.orders: 0 duplicates", invalid+valid, invalid+valid))

	out, code = jf(t, dev.env, "status", "--wait-idle", "300s")
	require.Zero(t, code, out)
	require.Equal(t, uint64(invalid+valid), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest))
	require.Equal(t, uint64(valid), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean))
	require.Equal(t, uint64(invalid), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamDLQ))

	out, code = jf(t, nil, "query", "--data-dir", dev.dataDir, "--format", "csv",
		"SELECT count(*) AS n, count(DISTINCT order_id) AS ids FROM orders")
	require.Zero(t, code, out)
	require.Equal(t, fmt.Sprintf("n,ids\n%d,%d\n", valid, valid), out)
	out, code = jf(t, nil, "query", "--data-dir", dev.dataDir, "--format", "csv", "SELECT sum(orders) AS n FROM customer_ltv")
	require.Zero(t, code, out)
	require.Equal(t, fmt.Sprintf("n\n%d\n", valid), out)
}
