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
