package aggregate

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
)

// requireReadableByArrow reads every mart and lake file with apache
// arrow-go's Parquet reader (no DuckDB involved) and checks the columns
// and the totals against the generated records.
func requireReadableByArrow(t *testing.T, dataDir string, distinct []order) {
	t.Helper()
	var wantRevenue float64
	wantIDs := make([]string, 0, len(distinct))
	for _, o := range distinct {
		wantRevenue += o.AmountUSD
		wantIDs = append(wantIDs, o.OrderID)
	}
	slices.Sort(wantIDs)
	manifests, err := marts.ReadManifests(dataDir)
	require.NoError(t, err)
	require.Len(t, manifests, 3)
	for _, m := range manifests {
		var wantCols []string
		for _, c := range m.Columns {
			if !slices.Contains(m.PartitionBy, c.Name) {
				wantCols = append(wantCols, c.Name)
			}
		}
		var rows int64
		var orders int64
		var revenue float64
		var ids []string
		files := 0
		err := filepath.WalkDir(m.Dir, func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			if d.IsDir() || !strings.HasSuffix(path, ".parquet") {
				return nil
			}
			files++
			rdr, err := file.OpenParquetFile(path, false)
			require.NoError(t, err, path)
			defer rdr.Close()
			rows += rdr.NumRows()
			schema := rdr.MetaData().Schema
			var names []string
			for j := range schema.NumColumns() {
				names = append(names, schema.Column(j).Name())
			}
			require.Equal(t, wantCols, names, path)
			for g := range rdr.NumRowGroups() {
				rg := rdr.RowGroup(g)
				n := rg.NumRows()
				for j, name := range names {
					cr, err := rg.Column(j)
					require.NoError(t, err)
					defLvls := make([]int16, n)
					switch {
					case m.Kind == marts.KindMart && name == "orders":
						vals := make([]int64, n)
						_, read, err := cr.(*file.Int64ColumnChunkReader).ReadBatch(n, vals, defLvls, nil)
						require.NoError(t, err)
						for _, v := range vals[:read] {
							orders += v
						}
					case m.Kind == marts.KindMart && name == "revenue_usd":
						vals := make([]float64, n)
						_, read, err := cr.(*file.Float64ColumnChunkReader).ReadBatch(n, vals, defLvls, nil)
						require.NoError(t, err)
						for _, v := range vals[:read] {
							revenue += v
						}
					case m.Kind == marts.KindLake && name == "order_id":
						vals := make([]parquet.ByteArray, n)
						_, read, err := cr.(*file.ByteArrayColumnChunkReader).ReadBatch(n, vals, defLvls, nil)
						require.NoError(t, err)
						for _, v := range vals[:read] {
							ids = append(ids, string(v))
						}
					}
				}
			}
			return nil
		})
		require.NoError(t, err)
		require.Positive(t, files)
		require.Equal(t, m.Rows, rows, m.Name)
		switch m.Kind {
		case marts.KindMart:
			require.Equal(t, int64(len(distinct)), orders, m.Name)
			require.InDelta(t, wantRevenue, revenue, 1e-6*wantRevenue, m.Name)
		case marts.KindLake:
			slices.Sort(ids)
			require.Equal(t, wantIDs, ids)
		}
	}
}
