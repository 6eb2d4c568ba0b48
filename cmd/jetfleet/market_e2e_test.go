package main_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

const marketPipeline = "../../examples/market/pipeline.yaml"

func TestMarketPipelineCheck(t *testing.T) {
	t.Parallel()
	out, code := jf(t, nil, "pipeline", "check", marketPipeline)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ok: pipeline market: datasets ticks (6 rules, 4 transforms)")
}

// TestMarketDemo: `jetfleet dev --pipeline examples/market/pipeline.yaml
// --demo` publishes ticks of both feeds, and the marts fill in, indicators
// included; the generator's invalid records are dead-lettered.
func TestMarketDemo(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	dev := startDev(t, dataDir, "--pipeline", marketPipeline, "--demo", "--demo-rate", "100")
	// The demo publisher starts beside the fleet; the ready line says so.
	embeddedtest.WaitFor(t, 30*time.Second, "the demo publisher", func() bool {
		return strings.Contains(dev.proc.out.String(), `"demo":"market ticks from two feeds to jf.ingest.ticks at 100/s`)
	})

	// One query over HTTP: rows of both marts, full indicators, both feeds.
	q := url.Values{"format": {"json"}, "q": {`SELECT
		(SELECT count(*) FROM bars_1m) AS bars,
		(SELECT count(*) FROM indicators WHERE sma_20 IS NOT NULL AND volatility_20 IS NOT NULL AND rsi_14 IS NOT NULL) AS full_indicators,
		(SELECT count(DISTINCT feed) FROM ticks) AS feeds`}}
	var last string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last answer of /query: %s", last)
		}
	})
	// Each check is a query: no need to spin.
	embeddedtest.CheckFor(t, 2*time.Minute, 200*time.Millisecond, func() error {
		resp, err := http.Get("http://" + dev.http + "/query?" + q.Encode())
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		last = string(body)
		var rows []struct {
			Bars           int64 `json:"bars"`
			FullIndicators int64 `json:"full_indicators"`
			Feeds          int64 `json:"feeds"`
		}
		if json.Unmarshal(body, &rows) != nil || len(rows) != 1 {
			return errors.New("market marts with full indicators: /query answered " + last)
		}
		if r := rows[0]; r.Bars == 0 || r.FullIndicators == 0 || r.Feeds != 2 {
			return errors.New("market marts with full indicators: " + last)
		}
		return nil
	})
	embeddedtest.WaitFor(t, time.Minute, "dead letters", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamDLQ) > 0 })

	out, code := jf(t, nil, "query", "--data-dir", dataDir, "--format", "csv",
		"SELECT count(*) > 0 AS ok FROM bars_1m WHERE low <= open AND open <= high AND low <= close AND close <= high AND trades > 0")
	require.Equal(t, 0, code, out)
	require.Equal(t, "ok\ntrue", strings.TrimSpace(strings.ReplaceAll(out, "\r", "")))
}

// TestDemoWithoutSampleData: --demo on a pipeline no demo data fits says
// so and runs the fleet anyway.
func TestDemoWithoutSampleData(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", "../../examples/iot/pipeline.yaml", "--demo")
	require.Contains(t, dev.proc.out.String(), "--demo has no sample data for this pipeline")
}
