package ingest_test

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/workers/ingest"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// TestShopExampleFiles: examples/shop/orders.txt (fixed-width) cleans to
// the same records as the valid lines of examples/shop/orders.ndjson.
func TestShopExampleFiles(t *testing.T) {
	t.Parallel()
	spec := examples.Shop()
	ds := spec.Dataset("orders")
	tables, err := transform.NewStaticTables(spec)
	require.NoError(t, err)
	th, err := transform.New(ds, tables)
	require.NoError(t, err)
	cleanAll := func(path string, format ingest.Format) []string {
		f, err := os.Open(path)
		require.NoError(t, err)
		defer f.Close()
		r, err := ingest.NewReader(format, f, ingest.OptionsFor(ds))
		require.NoError(t, err)
		var out []string
		for {
			rec, err := r.Next()
			if errors.Is(err, io.EOF) {
				return out
			}
			require.NoError(t, err)
			c, err := th.Transform(rec.Data)
			if err == nil {
				out = append(out, string(c))
			}
		}
	}
	fromNDJSON := cleanAll("../../examples/shop/orders.ndjson", ingest.NDJSON)
	fromFixed := cleanAll("../../examples/shop/orders.txt", ingest.FixedWidth)
	require.Len(t, fromFixed, 4)
	require.Equal(t, fromNDJSON[:4], fromFixed)
}
