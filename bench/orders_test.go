package bench_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/bench"
)

func TestOrderGeneratorDeterministic(t *testing.T) {
	t.Parallel()
	a := bench.NewOrderGenerator(42, 0.1, 0.05)
	b := bench.NewOrderGenerator(42, 0.1, 0.05)
	counts := map[bench.Kind]int{}
	for range 5000 {
		la, ka := a.Next()
		lb, kb := b.Next()
		require.Equal(t, la, lb)
		require.Equal(t, ka, kb)
		counts[ka]++
		if ka == bench.Valid {
			var o bench.Order
			require.NoError(t, json.Unmarshal(la, &o))
			require.NotEmpty(t, o.OrderID)
		}
	}
	require.InDelta(t, 500, counts[bench.Invalid], 120)
	require.InDelta(t, 250, counts[bench.Duplicate], 90)
}

// The generator writes its records without encoding/json, so they must
// be what encoding/json would have written, and the id it reports must
// be the record's order_id.
func TestOrderGeneratorWritesWhatEncodingJSONWrites(t *testing.T) {
	t.Parallel()
	g := bench.NewOrderGenerator(7, 0.3, 0.1)
	kinds := map[bench.Kind]int{}
	broken := 0
	for range 20000 {
		line, id, kind := g.NextWithID()
		kinds[kind]++
		var o bench.Order
		if err := json.Unmarshal(line, &o); err != nil {
			require.Empty(t, id, "a record that is not JSON has no id: %s", line)
			require.Equal(t, bench.Invalid, kind)
			broken++
			continue
		}
		require.Equal(t, o.OrderID, id, "%s", line)
		want, err := json.Marshal(o)
		require.NoError(t, err)
		require.Equal(t, string(want), string(line))
	}
	require.Positive(t, broken)
	require.Positive(t, kinds[bench.Duplicate])
	require.Positive(t, kinds[bench.Valid])
}
