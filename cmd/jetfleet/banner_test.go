package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// TestDevStartBanner: on a console (here forced, since the test's stderr
// is no terminal) jetfleet dev says once it is ready where everything is
// and what to try, and the start is not a wall of per-worker lines or
// empty error fields.
func TestDevStartBanner(t *testing.T) {
	t.Parallel()
	port, httpPort := embeddedtest.FreePort(t), embeddedtest.FreePort(t)
	dataDir := t.TempDir()
	p := start(t, nil, "dev", "--demo", "--data-dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--http", fmt.Sprintf("127.0.0.1:%d", httpPort), "--log-format", "console")
	embeddedtest.WaitFor(t, 30*time.Second, "the banner", func() bool { return strings.Contains(p.out.String(), "  try ") })
	out := p.out.String()
	nats := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for _, want := range []string{
		"jetfleet dev ready\n",
		"  NATS       " + nats + "\n",
		fmt.Sprintf("  console    http://127.0.0.1:%d/  (read-only; --console-write allows replay, pause, resume, drain)\n", httpPort),
		"  data dir   " + dataDir + "\n",
		"  pipeline   shop (built-in demo, examples/shop/pipeline.yaml)\n",
		"  datasets   orders  ->  marts daily_sales, customer_ltv\n",
		"  demo       shop orders to jf.ingest.orders at 5/s: about 5% invalid",
		"  try        NATS_URL=" + nats + " jetfleet status\n",
		"             NATS_URL=" + nats + " jetfleet dlq ls\n",
		"             jetfleet query --data-dir " + dataDir + " 'SELECT * FROM daily_sales LIMIT 10'\n",
	} {
		require.Contains(t, out, want)
	}
	start, _, _ := strings.Cut(out, "jetfleet dev ready")
	require.NotContains(t, start, "worker started", "per-worker start lines are at debug")
	require.NotContains(t, start, "worker alive")
	require.NotContains(t, start, "aggregator owns partitions")
	require.NotRegexp(t, `error=(\s|$)`, out, "no empty error field")
	require.Less(t, strings.Count(start, "\n"), 10, "a short start:\n%s", start)
}

// requireReadyLine checks the structured form of the banner in a dev
// log written as JSON, and that no line carries an empty error.
func requireReadyLine(t *testing.T, log string) {
	t.Helper()
	var ready map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if e, ok := m["error"]; ok {
			require.NotEmpty(t, e, "an empty error field: %s", line)
		}
		if m["message"] == "jetfleet dev ready" {
			ready = m
		}
	}
	require.NotNil(t, ready, "a jetfleet dev ready line")
	for _, k := range []string{"nats", "console", "data_dir", "pipeline", "datasets", "marts", "next"} {
		require.Contains(t, ready, k)
	}
	require.Equal(t, []any{"orders"}, ready["datasets"])
	require.Len(t, ready["next"], 3)
}
