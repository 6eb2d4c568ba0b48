package main_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

func TestPipelineCheck(t *testing.T) {
	t.Parallel()
	out, code := jf(t, nil, "pipeline", "check", "../../examples/shop/pipeline.yaml")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ok: pipeline shop")
	require.Contains(t, out, "mart daily_sales: kept incrementally")
	require.Contains(t, out, "mart customer_ltv: kept incrementally")
	out, code = jf(t, nil, "pipeline", "check", "../../examples/feedback/pipeline.yaml")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "mart customer_sentiment: recomputed whole from the lake at each write (arg_max is not decomposable)")

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("name: x\ndatasets:\n  d:\n    key: id\n    schema: [{name: id, type: VARCHAR}]\n    colour: red\n"), 0o600))
	out, code = jf(t, nil, "pipeline", "check", bad)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "bad.yaml:6:5: datasets.d.colour: unknown key")

	out, code = jf(t, nil, "pipeline", "check")
	require.Equal(t, 2, code, out)

	out, code = jf(t, nil, "pipeline", "default")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "name: shop")
}

func TestLookupLoad(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	out, code := jf(t, nil, "lookup", "load", "--nats", srv.ClientURL())
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "fx: 3 rows loaded, 0 stale keys deleted")

	csv := filepath.Join(t.TempDir(), "fx.csv")
	require.NoError(t, os.WriteFile(csv, []byte("currency,rate\nUSD,1\nEUR,1.1\n"), 0o600))
	out, code = jf(t, nil, "lookup", "load", "--nats", srv.ClientURL(), "--csv", csv, "fx")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "fx: 2 rows loaded, 1 stale keys deleted")
	kv, err := js.KeyValue(t.Context(), subjects.LookupBucket("fx"))
	require.NoError(t, err)
	e, err := kv.Get(t.Context(), "EUR")
	require.NoError(t, err)
	require.JSONEq(t, `{"currency":"EUR","rate":"1.1"}`, string(e.Value()), "CSV cells are strings unless typed")

	out, code = jf(t, nil, "lookup", "load", "--nats", srv.ClientURL(), "nope")
	require.Equal(t, 2, code, out)
	require.Contains(t, out, `no lookup table "nope"`)
}
