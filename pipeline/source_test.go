package pipeline_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
)

const twoSources = minimal + `    sources:
      flat:
        when: sym != nil
        fields: {id: id, symbol: sym, price: px}
        set: {feed: A, weight: 2}
      nested:
        when: instrument != nil
        fields: {id: trade.id, symbol: instrument.ticker, price: trade.price}
        set: {feed: B}
`

func TestParseSources(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Parse("p.yaml", []byte(twoSources))
	require.NoError(t, err)
	src := s.Datasets[0].Sources
	require.Len(t, src, 2)
	require.Equal(t, "flat", src[0].Name)
	require.Equal(t, "sym != nil", src[0].When)
	require.Equal(t, 7, src[0].Pos.Line)
	require.Equal(t, []pipeline.SourceField{
		{Field: "id", Path: []string{"trade", "id"}},
		{Field: "symbol", Path: []string{"instrument", "ticker"}},
		{Field: "price", Path: []string{"trade", "price"}},
	}, src[1].Fields)
	require.Equal(t, []pipeline.SourceConst{{Field: "feed", Value: "A"}, {Field: "weight", Value: int64(2)}}, src[0].Set)
}

func TestFromSource(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Parse("p.yaml", []byte(twoSources))
	require.NoError(t, err)
	ds := s.Datasets[0]
	for _, tc := range []struct {
		name, in, want, source, err string
	}{
		{"flat", `{"id":"a-1","sym":"aapl","px":"1.50","extra":true}`, `{"feed":"A","id":"a-1","price":"1.50","symbol":"aapl","weight":2}`, "flat", ""},
		{"nested", `{"instrument":{"ticker":"AAPL"},"trade":{"id":"b-1","price":1.5000}}`, `{"feed":"B","id":"b-1","price":1.5000,"symbol":"AAPL"}`, "nested", ""},
		{"first match wins", `{"sym":"X","instrument":{"ticker":"Y"}}`, `{"feed":"A","symbol":"X","weight":2}`, "flat", ""},
		{"missing path left unset", `{"instrument":"AAPL","trade":{"price":1}}`, `{"feed":"B","price":1}`, "nested", ""},
		{"no source", `{"ticker":"AAPL"}`, "", "", "record matches no source (flat: sym != nil; nested: instrument != nil)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := pipeline.DecodeRecord([]byte(tc.in))
			require.NoError(t, err)
			out, src, err := ds.FromSource(rec)
			if tc.err != "" {
				require.ErrorIs(t, err, pipeline.ErrNoSource)
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.source, src.Name)
			b, err := pipeline.EncodeRecord(out)
			require.NoError(t, err)
			require.Equal(t, tc.want, string(b))
		})
	}

	// Without sources a record is taken as it is.
	plain, err := pipeline.Parse("p.yaml", []byte(minimal))
	require.NoError(t, err)
	rec := pipeline.Record{"id": json.Number("1")}
	out, src, err := plain.Datasets[0].FromSource(rec)
	require.NoError(t, err)
	require.Nil(t, src)
	require.Equal(t, rec, out)
}

func TestParseSourceErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"not a mapping", minimal + "    sources: [a]\n", "datasets.d.sources: got a list, want a mapping of source names"},
		{"empty", minimal + "    sources: {}\n", "datasets.d.sources: empty, want at least one source"},
		{"no fields", minimal + "    sources: {a: {when: 'x != nil'}}\n", "datasets.d.sources.a.fields: missing (required)"},
		{"unknown key", minimal + "    sources: {a: {fields: {id: x}, map: 1}}\n", "datasets.d.sources.a.map: unknown key"},
		{"bad when", minimal + "    sources: {a: {when: 'x >', fields: {id: x}}}\n", "datasets.d.sources.a.when: expression does not compile"},
		{"empty path part", minimal + "    sources: {a: {fields: {id: trade..id}}}\n", `datasets.d.sources.a.fields.id: path "trade..id" has an empty part`},
		{"field twice", minimal + "    sources: {a: {fields: {id: x}, set: {id: 1}}}\n", "datasets.d.sources.a.set.id: field id is set twice"},
		{"set not scalar", minimal + "    sources: {a: {fields: {id: x}, set: {tags: [1]}}}\n", "datasets.d.sources.a.set.tags: got a list, want a string, number or boolean"},
		{"catch-all not last", minimal + "    sources:\n      a: {fields: {id: x}}\n      b: {when: 'y != nil', fields: {id: y}}\n", "p.yaml:7:7: datasets.d.sources.a: has no when, so it takes every record"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pipeline.Parse("p.yaml", []byte(tc.yaml))
			require.ErrorIs(t, err, pipeline.ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestLoadMarketExample(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Load("../examples/market/pipeline.yaml")
	require.NoError(t, err)
	ds := s.Dataset("ticks")
	require.Len(t, ds.Sources, 2)
	require.Equal(t, "trade_id", ds.Key)
	require.Equal(t, []string{"day"}, s.Mart("bars_1m").PartitionBy)
	require.Contains(t, s.Mart("indicators").SQL, "PARTITION BY symbol, day", "indicator windows reset each day partition")
}
