package transform_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// TestMarketExample runs examples/market's sample ticks, from two feeds
// of different shapes, through its sources, rules and transforms: both
// come out as one tick shape.
func TestMarketExample(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Load("../../examples/market/pipeline.yaml")
	require.NoError(t, err)
	ds := spec.Dataset("ticks")
	vh, err := validate.New(ds)
	require.NoError(t, err)
	th, err := transform.New(ds, nil)
	require.NoError(t, err)
	data, err := os.ReadFile("../../examples/market/ticks.ndjson")
	require.NoError(t, err)

	var clean, reasons []string
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		valid, err := vh.Valid(line)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		out, err := th.Transform(valid)
		require.NoError(t, err)
		clean = append(clean, string(out))
	}
	require.Equal(t, []string{
		`{"feed":"A","price":187.25,"size":100,"symbol":"AAPL","trade_id":"XA-000001","ts":"2026-11-22T02:00:00.123Z"}`,
		`{"feed":"B","price":187.31,"size":50,"symbol":"AAPL","trade_id":"XB-000001","ts":"2026-11-22T02:00:01.456Z"}`,
		`{"feed":"A","price":411.0,"size":20,"symbol":"MSFT","trade_id":"XA-000002","ts":"2026-11-22T02:00:05Z"}`,
		`{"feed":"B","price":410.95,"size":10,"symbol":"MSFT","trade_id":"XB-000002","ts":"2026-11-22T02:00:06Z"}`,
		// a replay: the aggregator counts it once by trade_id
		`{"feed":"A","price":187.25,"size":100,"symbol":"AAPL","trade_id":"XA-000001","ts":"2026-11-22T02:00:00.123Z"}`,
	}, clean)
	require.Equal(t, []string{
		"validation failed: price_positive: price must be a positive number or numeric string",
		"validation failed (2 rules): price_positive: price must be a positive number or numeric string; size: 0 is below the minimum 1",
		"record matches no source (feed_a: sym != nil; feed_b: instrument != nil)",
		`validation failed (2 rules): symbol: "TOOLONGSYM" does not match ^[A-Z]{1,6}$; ts: "yesterday" is not a timestamp in format unix_ms or rfc3339`,
	}, reasons)
}
