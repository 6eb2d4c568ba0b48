package marts_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
)

func ptr(s string) *string { return &s }

func TestPartitionDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cols []string
		vals []*string
		want string
	}{
		{[]string{"day"}, []*string{ptr("2026-10-01")}, "day=2026-10-01"},
		{[]string{"day", "country"}, []*string{ptr("2026-10-01"), ptr("US")}, "day=2026-10-01/country=US"},
		{[]string{"country"}, []*string{nil}, "country=__HIVE_DEFAULT_PARTITION__"},
		{[]string{"country"}, []*string{ptr("")}, "country="},
		{[]string{"path"}, []*string{ptr("a/b=c%d")}, "path=a%2Fb%3Dc%25d"},
		{[]string{"ts"}, []*string{ptr("2026-10-01 10:00:00")}, "ts=2026-10-01%2010%3A00%3A00"},
		{[]string{"s"}, []*string{ptr("ü€ x.y~z")}, "s=%C3%BC%E2%82%AC%20x.y~z"},
	} {
		require.Equal(t, tc.want, marts.PartitionDir(tc.cols, tc.vals))
	}
}

func TestManifestsAndPending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pending, err := marts.Pending(dir)
	require.NoError(t, err)
	require.Empty(t, pending)

	require.NoError(t, marts.WriteProgress(dir, marts.Progress{Dataset: "orders", CommittedSeq: 10}))
	pending, err = marts.Pending(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"dataset:orders"}, pending)

	m := marts.Manifest{
		Name: "daily_sales", Kind: marts.KindMart, Dataset: "orders", Dir: marts.MartPath(dir, "daily_sales"),
		Columns: []marts.Column{{Name: "day", Type: "DATE"}}, PartitionBy: []string{"day"}, Rows: 3, Partitions: 2, LastSeq: 9, UpdatedAt: time.Now().UTC(),
	}
	require.NoError(t, marts.WriteManifest(m))
	require.NoError(t, marts.WriteManifest(marts.Manifest{Name: "orders", Kind: marts.KindLake, Dataset: "orders", Dir: marts.LakePath(dir, "orders"), LastSeq: 10}))
	pending, err = marts.Pending(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"mart:daily_sales"}, pending)

	m.LastSeq = 10
	require.NoError(t, marts.WriteManifest(m))
	pending, err = marts.Pending(dir)
	require.NoError(t, err)
	require.Empty(t, pending)

	ms, err := marts.ReadManifests(dir)
	require.NoError(t, err)
	require.Len(t, ms, 2)
	require.Equal(t, "daily_sales", ms[0].Name)
	require.Equal(t, int64(3), ms[0].Rows)
	require.Equal(t, marts.KindLake, ms[1].Kind)
}
