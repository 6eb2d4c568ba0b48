package marketgen_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples/marketgen"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// TestRecordsMatchThePipeline: what the generator calls valid passes the
// market pipeline's sources, rules and transforms, what it calls invalid
// is rejected, and the same seed gives the same stream.
func TestRecordsMatchThePipeline(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Load("../market/pipeline.yaml")
	require.NoError(t, err)
	ds := spec.Dataset(marketgen.Dataset)
	vh, err := validate.New(ds)
	require.NoError(t, err)
	th, err := transform.New(ds, nil)
	require.NoError(t, err)

	cfg := marketgen.Config{Seed: 42, InvalidShare: 0.05, ReplayShare: 0.05}
	g, again := marketgen.New(cfg), marketgen.New(cfg)
	counts := map[string]int{}
	ids := map[string]bool{}
	for range 5000 {
		r := g.Next()
		require.Equal(t, r, again.Next(), "deterministic")
		require.False(t, ids[r.MsgID], "message ids are unique: %s", r.MsgID)
		ids[r.MsgID] = true
		valid, err := vh.Valid(r.Data)
		if !r.Valid {
			require.Error(t, err, "%s", r.Data)
			counts["invalid"]++
			continue
		}
		require.NoError(t, err, "%s", r.Data)
		_, err = th.Transform(valid)
		require.NoError(t, err, "%s", r.Data)
		switch {
		case r.Replay:
			counts["replay"]++
		default:
			counts[r.Feed]++
		}
	}
	for _, k := range []string{"invalid", "replay", marketgen.FeedA, marketgen.FeedB} {
		require.Greater(t, counts[k], 100, "%s: %v", k, counts)
	}
}
