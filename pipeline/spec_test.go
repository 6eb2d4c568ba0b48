package pipeline_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
)

func TestDefault(t *testing.T) {
	t.Parallel()
	s := examples.Shop()
	require.Equal(t, "shop", s.Name)
	require.Equal(t, []string{"orders"}, s.DatasetNames())
	ds := s.Dataset("orders")
	require.Equal(t, "order_id", ds.Key)
	require.Equal(t, []pipeline.Column{
		{Name: "order_id", Type: "VARCHAR"},
		{Name: "customer_id", Type: "VARCHAR"},
		{Name: "amount", Type: "DOUBLE"},
		{Name: "currency", Type: "VARCHAR"},
		{Name: "amount_usd", Type: "DOUBLE"},
		{Name: "country", Type: "VARCHAR"},
		{Name: "ts", Type: "TIMESTAMPTZ"},
		{Name: "email_hash", Type: "VARCHAR"},
	}, ds.Schema)
	require.Len(t, s.Marts, 2)
	m := s.Mart("daily_sales")
	require.Equal(t, "orders", m.Dataset)
	require.Equal(t, []string{"day"}, m.PartitionBy)
	require.Equal(t, 10000, m.FlushRecords)
	require.Equal(t, 2*time.Second, m.FlushInterval)
	require.Equal(t, "examples/shop/pipeline.yaml", m.Pos.File)
	require.Positive(t, m.Pos.Line)
	fx := s.Lookup("fx")
	require.Len(t, fx.Rows, 3)
	require.Len(t, ds.Ingest.FixedWidth, 7)
}

func TestLoadExamples(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"../examples/shop/pipeline.yaml", "../examples/iot/pipeline.yaml", "../examples/feedback/pipeline.yaml"} {
		t.Run(filepath.Base(filepath.Dir(f)), func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(f); err != nil {
				t.Skip("example not present")
			}
			s, err := pipeline.Load(f)
			require.NoError(t, err)
			require.NotEmpty(t, s.Datasets)
		})
	}
}

const minimal = `name: p
datasets:
  d:
    key: id
    schema: [{name: id, type: varchar}]
`

func TestParseMinimal(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Parse("p.yaml", []byte(minimal))
	require.NoError(t, err)
	require.Equal(t, "VARCHAR", s.Datasets[0].Schema[0].Type, "types are upper-cased")
	require.Equal(t, pipeline.IDContent, s.Datasets[0].Ingest.ID)
}

// TestParseErrors: every bad file names file:line, the field, and what
// was expected.
func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"empty", ``, []string{"p.yaml", "empty"}},
		{"not yaml", "name: [", []string{"p.yaml", "not valid YAML"}},
		{"root list", "- a", []string{"p.yaml:1:1", "want a mapping"}},
		{"two docs", minimal + "---\nname: q\n", []string{"more than one YAML document"}},
		{"unknown top key", minimal + "extra: 1\n", []string{"p.yaml:6:1: extra: unknown key (want one of name, description, datasets, lookups, marts, webhooks, alerts)"}},
		{"missing name", "datasets: {d: {key: id, schema: [{name: id, type: VARCHAR}]}}", []string{"p.yaml:1:1: name: missing (required)"}},
		{"bad name", strings.Replace(minimal, "name: p", "name: a.b", 1), []string{"p.yaml:1:7: name:", "pipeline name \"a.b\""}},
		{"bad dataset name", strings.Replace(minimal, "  d:", "  d*:", 1), []string{"p.yaml:3:3: datasets.d*"}},
		{"duplicate key", minimal + "  d:\n    key: x\n", []string{"already defined"}},
		{"no datasets", "name: p\ndatasets: {}\n", []string{"datasets: empty"}},
		{"unknown dataset key", minimal + "    colour: red\n", []string{"p.yaml:6:5: datasets.d.colour: unknown key"}},
		{"bad duck type", strings.Replace(minimal, "varchar", "text2", 1), []string{"p.yaml:5:31: datasets.d.schema[0].type: unknown type \"TEXT2\""}},
		{"key not in schema", strings.Replace(minimal, "key: id", "key: nope", 1), []string{"datasets.d.key: key nope is not a schema column"}},
		{"dup column", strings.Replace(minimal, "[{name: id, type: varchar}]", "[{name: id, type: varchar}, {name: id, type: DOUBLE}]", 1), []string{"listed twice"}},
		{"rule unknown type", minimal + "    validate: [{field: a, type: numbr}]\n", []string{"p.yaml:6:33: datasets.d.validate[0].type: got \"numbr\", want one of string, number"}},
		{"rule bool", minimal + "    validate: [{field: a, required: yes please}]\n", []string{"validate[0].required: got \"yes please\", want true or false"}},
		{"rule min needs number", minimal + "    validate: [{field: a, type: string, min: 1}]\n", []string{"validate[0].min: needs type number or integer"}},
		{"rule min not number", minimal + "    validate: [{field: a, type: number, min: abc}]\n", []string{"validate[0].min: got \"abc\", want a number"}},
		{"rule min > max", minimal + "    validate: [{field: a, type: number, min: 5, max: 1}]\n", []string{"validate[0].max: 1 is below min 5"}},
		{"rule bad regex", minimal + "    validate: [{field: a, type: string, regex: '([a-z'}]\n", []string{"validate[0].regex: not a valid regular expression"}},
		{"rule bad expr", minimal + "    validate: [{expr: 'a >'}]\n", []string{"validate[0].expr: expression does not compile"}},
		{"rule expr and field", minimal + "    validate: [{field: a, expr: 'a > 1'}]\n", []string{"not both"}},
		{"rule neither", minimal + "    validate: [{type: string}]\n", []string{"a rule needs field"}},
		{"rule enum type", minimal + "    validate: [{field: a, type: number, enum: [x]}]\n", []string{"enum: value x does not match type number"}},
		{"rule bad normalize", minimal + "    validate: [{field: a, type: string, normalize: [shout]}]\n", []string{"normalize[0]: unknown normalisation \"shout\""}},
		{"rule bad format", minimal + "    validate: [{field: a, type: timestamp, formats: [iso]}]\n", []string{"formats: format \"iso\""}},
		{"rule bad tz", minimal + "    validate: [{field: a, type: timestamp, timezone: Mars/Base}]\n", []string{"unknown timezone \"Mars/Base\""}},
		{"validate not list", minimal + "    validate: {field: a}\n", []string{"datasets.d.validate: got a mapping, want a list of rules"}},
		{"transform unknown", minimal + "    transform: [{shout: [a]}]\n", []string{"p.yaml:6:18: datasets.d.transform[0].shout: unknown transform (want one of trim"}},
		{"transform two ops", minimal + "    transform: [{trim: [a], upper: [a]}]\n", []string{"one operation per list item, got trim, upper"}},
		{"transform no table", minimal + "    transform: [{lookup: {table: fx, key: c, fields: [rate]}}]\n", []string{"transform[0].lookup.table: no lookup table fx (lookups has none)"}},
		{"transform missing default", minimal + "    transform: [{lookup: {table: fx, key: c, fields: [rate], missing: default}}]\n", []string{"missing: default needs a default row"}},
		{"transform bad missing", minimal + "    transform: [{lookup: {table: fx, key: c, fields: [rate], missing: skip}}]\n", []string{"missing: got \"skip\", want one of dlq, default, pass"}},
		{"derive bad expr", minimal + "    transform: [{derive: {field: x, expr: '1 +* 2'}}]\n", []string{"derive.expr: expression does not compile"}},
		{"derive no field", minimal + "    transform: [{derive: {expr: '1'}}]\n", []string{"derive.field: missing (required)"}},
		{"mask bad action", minimal + "    transform: [{mask: {field: e, action: burn}}]\n", []string{"mask.action: got \"burn\", want one of drop, redact, hash"}},
		{"mask salt on drop", minimal + "    transform: [{mask: {field: e, action: drop, salt: x}}]\n", []string{"mask.salt: only used with action: hash"}},
		{"ingest bad id", minimal + "    ingest: {id: random}\n", []string{"ingest.id: got \"random\", want one of content, key"}},
		{"ingest bulk negative", minimal + "    ingest: {bulk: -1}\n", []string{"ingest.bulk: got -1, want at least 0"}},
		{"ingest delimiter", minimal + "    ingest: {csv: {delimiter: ';;'}}\n", []string{"csv.delimiter: got \";;\""}},
		{"fixed overlap", minimal + "    ingest: {fixed_width: {columns: [{name: a, start: 1, width: 5}, {name: b, start: 3, width: 2}]}}\n", []string{"columns a (1-5) and b (3-4) overlap"}},
		{"fixed start 0", minimal + "    ingest: {fixed_width: {columns: [{name: a, start: 0, width: 5}]}}\n", []string{"start: got 0, want at least 1"}},
		{"lookup neither", minimal + "lookups: {fx: {key: c}}\n", []string{"lookups.fx: needs rows (inline) or csv"}},
		{"lookup row no key", minimal + "lookups: {fx: {key: c, rows: [{d: 1}]}}\n", []string{"lookups.fx.rows[0]: row has no key column \"c\""}},
		{"lookup dup key", minimal + "lookups: {fx: {key: c, rows: [{c: A}, {c: A}]}}\n", []string{"key \"A\" repeats row 0"}},
		{"lookup csv missing", minimal + "lookups: {fx: {key: c, csv: nope.csv}}\n", []string{"lookups.fx.csv", "nope.csv"}},
		{"lookup field missing", minimal + "    transform: [{lookup: {table: fx, key: c, fields: [rate]}}]\nlookups: {fx: {key: c, rows: [{c: A, r: 1}]}}\n", []string{"table fx has no column rate (it has c, r)"}},
		{"mart no dataset", minimal + "marts: {m: {dataset: nope, sql: SELECT 1}}\n", []string{"marts.m.dataset: no dataset nope (datasets are d)"}},
		{"mart empty sql", minimal + "marts: {m: {dataset: d, sql: ''}}\n", []string{"marts.m.sql: empty"}},
		{"mart bad interval", minimal + "marts: {m: {dataset: d, sql: x, flush: {interval: soon}}}\n", []string{"flush.interval: got \"soon\", want a positive duration"}},
		{"mart bad compression", minimal + "marts: {m: {dataset: d, sql: x, compression: rar}}\n", []string{"p.yaml:6:46: marts.m.compression: \"rar\" is not a Parquet codec jetfleet writes (snappy, zstd"}},
		{"external unknown step", minimal + "    external_steps: [aggregate]\n", []string{"p.yaml:6:22: datasets.d.external_steps[0]: got \"aggregate\", want one of validate, transform"}},
		{"external twice", minimal + "    external_steps: [transform, transform]\n", []string{"external_steps[1]: step transform listed twice"}},
		{"external not list", minimal + "    external_steps: {transform: true}\n", []string{"datasets.d.external_steps: got a mapping, want a list of step names"}},
		{"external with transforms", minimal + "    external_steps: [transform]\n    transform: [{trim: [id]}]\n", []string{"p.yaml:7:5: datasets.d.transform: step transform is in external_steps"}},
		{"mart bad partition", minimal + "marts: {m: {dataset: d, sql: x, partition_by: [a-b]}}\n", []string{"\"a-b\" is not a column name"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pipeline.Parse("p.yaml", []byte(tc.yaml))
			require.Error(t, err)
			require.ErrorIs(t, err, pipeline.ErrInvalidSpec)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseExternalSteps(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Parse("p.yaml", []byte(minimal+"    external_steps: [transform]\n    validate: [{field: id, required: true}]\n"))
	require.NoError(t, err)
	ds := s.Dataset("d")
	require.Equal(t, []string{"transform"}, ds.ExternalSteps)
	require.True(t, ds.External("transform"))
	require.False(t, ds.External("validate"))

	s, err = pipeline.Parse("p.yaml", []byte(minimal))
	require.NoError(t, err)
	require.Empty(t, s.Dataset("d").ExternalSteps, "every step runs in jetfleet by default")
}

func TestParseReportsEveryError(t *testing.T) {
	t.Parallel()
	_, err := pipeline.Parse("p.yaml", []byte(minimal+"    validate: [{field: a, type: x}, {field: b, type: y}]\n    bogus: 1\n"))
	require.Error(t, err)
	var fes []*pipeline.FieldError
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *pipeline.FieldError
		require.ErrorAs(t, e, &fe)
		fes = append(fes, fe)
	}
	require.Len(t, fes, 3)
	require.Equal(t, 6, fes[0].Pos.Line)
	require.Equal(t, "datasets.d.bogus", fes[2].Field)
}

func TestLoadCSVLookup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "fx.csv"), []byte("currency,rate,active\nUSD,1,true\nEUR,1.08,false\n"), 0o600))
	spec := minimal + `    transform: [{lookup: {table: fx, key: id, fields: {rate: fx_rate}}}]
lookups:
  fx: {key: currency, csv: fx.csv, types: {rate: number, active: bool}}
`
	p := filepath.Join(dir, "p.yaml")
	require.NoError(t, os.WriteFile(p, []byte(spec), 0o600))
	s, err := pipeline.Load(p)
	require.NoError(t, err)
	rows, err := s.Lookup("fx").ReadRows()
	require.NoError(t, err)
	require.Equal(t, []map[string]any{
		{"currency": "USD", "rate": 1.0, "active": true},
		{"currency": "EUR", "rate": 1.08, "active": false},
	}, rows)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "fx.csv"), []byte("currency,rate,active\nUSD,one,true\n"), 0o600))
	_, err = s.Lookup("fx").ReadRows()
	require.ErrorContains(t, err, `lookup fx: line 2 column rate: "one" is not a number`)
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := pipeline.Load(filepath.Join(t.TempDir(), "none.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add(examples.ShopPipeline)
	f.Add([]byte("name: p\ndatasets: {d: {key: id, schema: [{name: id, type: VARCHAR}], validate: [{expr: 'id != nil'}]}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := pipeline.Parse("f.yaml", data)
		if err != nil {
			require.ErrorIs(t, err, pipeline.ErrInvalidSpec)
			return
		}
		require.NotEmpty(t, s.Datasets)
	})
}
