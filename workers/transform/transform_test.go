package transform_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/internal/cputime"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
)

const lookups = `lookups:
  fx:
    key: currency
    rows:
      - {currency: USD, rate: 1.0}
      - {currency: EUR, rate: 1.08}
      - {currency: "ü", rate: 2}
  n:
    key: id
    rows: [{id: 7, label: seven}]
`

func handler(t testing.TB, transforms string) *transform.Handler {
	t.Helper()
	spec, err := pipeline.Parse("t.yaml", []byte("name: t\ndatasets:\n  d:\n    key: id\n    schema: [{name: id, type: VARCHAR}]\n    transform:\n"+transforms+lookups))
	require.NoError(t, err)
	tables, err := transform.NewStaticTables(spec)
	require.NoError(t, err)
	h, err := transform.New(spec.Datasets[0], tables)
	require.NoError(t, err)
	return h
}

// TestTransforms: one case per operation and edge; want is the exact
// clean record, or the error text after "transform failed: ".
func TestTransforms(t *testing.T) { // not parallel: t.Setenv
	t.Setenv("JF_TEST_SALT", "pepper")
	for _, tc := range []struct {
		name, ops, in, want, wantErr string
	}{
		{"trim", `[trim: [a, b]]`, `{"a":"  x\t","b":"\u00a0y ","c":" z "}`, `{"a":"x","b":"y","c":" z "}`, ""},
		{"trim missing and null", `[trim: [a, b]]`, `{"b":null}`, `{"b":null}`, ""},
		{"trim number", `[trim: [a]]`, `{"a":1}`, "", "trim a: is a number, want a string"},
		{"upper unicode", `[upper: [a]]`, `{"a":"zoë ǆ"}`, `{"a":"ZOË Ǆ"}`, ""},
		{"lower", `[lower: [a]]`, `{"a":"ÀB@C.COM"}`, `{"a":"àb@c.com"}`, ""},
		{"upper empty", `[upper: [a]]`, `{"a":""}`, `{"a":""}`, ""},

		{"number from string", `[number: [a, b, c]]`, `{"a":" 12.50 ","b":7,"c":"-1e3"}`, `{"a":12.50,"b":7,"c":-1e3}`, ""},
		{"number keeps digits", `[number: [a]]`, `{"a":"12345678901234567890"}`, `{"a":12345678901234567890}`, ""},
		{"number NaN", `[number: [a]]`, `{"a":"NaN"}`, "", `number a: "NaN" is not a number`},
		{"number Inf", `[number: [a]]`, `{"a":"Inf"}`, "", `number a: "Inf" is not a number`},
		{"number hex", `[number: [a]]`, `{"a":"0x10"}`, "", `number a: "0x10" is not a number`},
		{"number huge", `[number: [a]]`, `{"a":"1e400"}`, "", `number a: "1e400" is out of range`},
		{"number empty", `[number: [a]]`, `{"a":""}`, "", `number a: "" is not a number`},
		{"number object", `[number: [a]]`, `{"a":{}}`, "", "number a: is an object, want a number or numeric string"},

		{"timestamp to UTC", `[timestamp: {field: ts}]`, `{"ts":"2026-10-01T23:30:00-02:00"}`, `{"ts":"2026-10-02T01:30:00Z"}`, ""},
		{"timestamp keeps fraction", `[timestamp: {field: ts}]`, `{"ts":"2026-10-01T10:00:00.250+01:00"}`, `{"ts":"2026-10-01T09:00:00.25Z"}`, ""},
		{"timestamp formats", `[timestamp: {fields: [a, b], formats: [rfc3339, "02.01.2006 15:04"], timezone: Europe/Berlin}]`, `{"a":"01.07.2026 12:00","b":"2026-07-01T12:00:00Z"}`, `{"a":"2026-07-01T10:00:00Z","b":"2026-07-01T12:00:00Z"}`, ""},
		{"timestamp unix_ms", `[timestamp: {field: t, formats: [unix_ms]}]`, `{"t":1790000000123}`, `{"t":"2026-09-21T14:13:20.123Z"}`, ""},
		{"timestamp bad", `[timestamp: {field: ts}]`, `{"ts":"yesterday"}`, "", `timestamp ts: "yesterday" is not a timestamp in format rfc3339`},
		{"timestamp missing ok", `[timestamp: {field: ts}]`, `{}`, `{}`, ""},

		{"lookup", `[lookup: {table: fx, key: c, fields: {rate: fx_rate}}]`, `{"c":"EUR"}`, `{"c":"EUR","fx_rate":1.08}`, ""},
		{"lookup same name", `[lookup: {table: fx, key: c, fields: [rate]}]`, `{"c":"USD"}`, `{"c":"USD","rate":1}`, ""},
		{"lookup unicode key", `[lookup: {table: fx, key: c, fields: [rate]}]`, `{"c":"ü"}`, `{"c":"ü","rate":2}`, ""},
		{"lookup numeric key", `[lookup: {table: n, key: id, fields: [label]}]`, `{"id":7.0}`, `{"id":7.0,"label":"seven"}`, ""},
		{"lookup numeric string key", `[lookup: {table: n, key: id, fields: [label]}]`, `{"id":"7"}`, `{"id":"7","label":"seven"}`, ""},
		{"lookup missing dlq", `[lookup: {table: fx, key: c, fields: [rate]}]`, `{"c":"BTC"}`, "", `lookup fx: no row for c="BTC"`},
		{"lookup missing key field", `[lookup: {table: fx, key: c, fields: [rate]}]`, `{}`, "", `lookup fx: key field c is missing`},
		{"lookup case matters", `[lookup: {table: fx, key: c, fields: [rate]}]`, `{"c":"usd"}`, "", `lookup fx: no row for c="usd"`},
		{"lookup missing default", `[lookup: {table: fx, key: c, fields: [rate], missing: default, default: {rate: 0}}]`, `{"c":"BTC"}`, `{"c":"BTC","rate":0}`, ""},
		{"lookup missing pass", `[lookup: {table: fx, key: c, fields: [rate], missing: pass}]`, `{"c":"BTC"}`, `{"c":"BTC"}`, ""},

		{"derive", `[derive: {field: x, expr: "a * b"}]`, `{"a":20,"b":1.08}`, `{"a":20,"b":1.08,"x":21.6}`, ""},
		{"derive string", `[derive: {field: x, expr: 'upper(a) + "-" + string(b)'}]`, `{"a":"k","b":2}`, `{"a":"k","b":2,"x":"K-2"}`, ""},
		{"derive bool", `[derive: {field: big, expr: "a > 100"}]`, `{"a":101}`, `{"a":101,"big":true}`, ""},
		{"derive nested", `[derive: {field: x, expr: "geo.lat"}]`, `{"geo":{"lat":"n"}}`, `{"geo":{"lat":"n"},"x":"n"}`, ""},
		{"derive nil drops", `[derive: {field: x, expr: "a"}]`, `{"x":1}`, `{}`, ""},
		{"derive Inf", `[derive: {field: x, expr: "a / 0"}]`, `{"a":1}`, "", "derive x: result +Inf is not a finite number"},
		{"derive NaN", `[derive: {field: x, expr: "a / b"}]`, `{"a":0,"b":0}`, "", "derive x: result NaN is not a finite number"},
		{"derive huge input", `[derive: {field: x, expr: "a * 2"}]`, `{"a":1e400}`, "", "derive x: invalid operation"},
		{"derive missing input", `[derive: {field: x, expr: "a * 2"}]`, `{}`, "", "derive x: invalid operation"},

		{"mask hash", `[mask: {field: email, action: hash, into: email_hash, normalize: [trim, lower]}]`, `{"email":" A@B.com"}`, `{"email_hash":"` + transform.Hash("", "a@b.com") + `"}`, ""},
		{"mask hash default into, keep", `[mask: {field: e, action: hash, keep: true}]`, `{"e":"x"}`, `{"e":"x","e_hash":"` + transform.Hash("", "x") + `"}`, ""},
		{"mask hash salt", `[mask: {field: e, action: hash, salt: s1}]`, `{"e":"x"}`, `{"e_hash":"` + transform.Hash("s1", "x") + `"}`, ""},
		{"mask hash salt env", `[mask: {field: e, action: hash, salt_env: JF_TEST_SALT}]`, `{"e":"x"}`, `{"e_hash":"` + transform.Hash("pepper", "x") + `"}`, ""},
		{"mask hash number", `[mask: {field: e, action: hash}]`, `{"e":4155550100}`, `{"e_hash":"` + transform.Hash("", "4155550100") + `"}`, ""},
		{"mask hash null", `[mask: {field: e, action: hash}]`, `{"e":null}`, `{}`, ""},
		{"mask hash absent", `[mask: {field: e, action: hash}]`, `{"a":1}`, `{"a":1}`, ""},
		{"mask hash object", `[mask: {field: e, action: hash}]`, `{"e":{"x":1}}`, "", "mask e: is an object, want a string or number to hash"},
		{"mask redact", `[mask: {field: e, action: redact}]`, `{"e":"secret"}`, `{"e":"REDACTED"}`, ""},
		{"mask redact with", `[mask: {field: e, action: redact, with: "***"}]`, `{"e":"secret"}`, `{"e":"***"}`, ""},
		{"mask drop", `[mask: {field: e, action: drop}]`, `{"e":"secret","f":1}`, `{"f":1}`, ""},

		{"drop", `[drop: [a, zz]]`, `{"a":1,"b":2}`, `{"b":2}`, ""},
		{"rename", `[rename: {a: b}]`, `{"a":1}`, `{"b":1}`, ""},
		{"no html escaping", `[trim: [a]]`, `{"a":"<b>&</b>"}`, `{"a":"<b>&</b>"}`, ""},
		{"unicode passes through", `[trim: [a]]`, `{"a":"🚀","名前":"Zoë"}`, `{"a":"🚀","名前":"Zoë"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops := strings.TrimPrefix(strings.TrimSuffix(tc.ops, "]"), "[")
			h := handler(t, "      - "+ops+"\n")
			out, err := h.Transform([]byte(tc.in))
			if tc.wantErr != "" {
				require.ErrorIs(t, err, transform.ErrTransform)
				require.ErrorContains(t, err, "transform failed: "+tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.JSONEq(t, tc.want, string(out))
			if tc.name == "number keeps digits" || tc.name == "number from string" {
				require.Equal(t, tc.want, string(out), "number literals are kept byte for byte")
			}
		})
	}
}

// TestShopTransforms: the shop demo's exact clean records.
func TestShopTransforms(t *testing.T) {
	t.Parallel()
	spec := examples.Shop()
	tables, err := transform.NewStaticTables(spec)
	require.NoError(t, err)
	h, err := transform.New(spec.Dataset("orders"), tables)
	require.NoError(t, err)
	for in, want := range map[string]string{
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`:                            `{"amount":10,"amount_usd":10,"country":"US","currency":"USD","customer_id":"c-1","order_id":"s-1","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","country":"DE","ts":"2026-10-01T23:30:00-02:00"}`:                       `{"amount":20,"amount_usd":21.6,"country":"DE","currency":"EUR","customer_id":"c-1","order_id":"s-2","ts":"2026-10-02T01:30:00Z"}`,
		`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`: `{"amount":5.5,"amount_usd":6.985,"country":"GB","currency":"GBP","customer_id":"c-2","email_hash":"fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf","order_id":"s-3","ts":"2026-10-02T07:00:00Z"}`,
		`{"order_id":"s-4","customer_id":"c-2","amount":1,"currency":"USD","country":"US","ts":"2026-10-02T08:00:00Z","note":{"gift":true}}`:        `{"amount":1,"amount_usd":1,"country":"US","currency":"USD","customer_id":"c-2","note":{"gift":true},"order_id":"s-4","ts":"2026-10-02T08:00:00Z"}`,
	} {
		out, err := h.Transform([]byte(in))
		require.NoError(t, err)
		require.Equal(t, want, string(out))
	}
	require.Equal(t, "fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf", transform.Hash("", "a@b.com"), "sha256 of a@b.com")
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	spec := examples.Shop()
	_, err := transform.New(spec.Dataset("orders"), nil)
	require.ErrorIs(t, err, workers.ErrInvalidConfig)
	require.ErrorContains(t, err, "looks up table fx")

	s2, err := pipeline.Parse("t.yaml", []byte("name: t\ndatasets:\n  d:\n    key: id\n    schema: [{name: id, type: VARCHAR}]\n    transform: [{mask: {field: e, action: hash, salt_env: JF_SURELY_UNSET_SALT}}]\n"))
	require.NoError(t, err)
	_, err = transform.New(s2.Datasets[0], nil)
	require.ErrorContains(t, err, "environment variable JF_SURELY_UNSET_SALT (the salt) is not set")
}

func TestHandleMarksPermanent(t *testing.T) {
	t.Parallel()
	spec := examples.Shop()
	tables, err := transform.NewStaticTables(spec)
	require.NoError(t, err)
	h, err := transform.New(spec.Dataset("orders"), tables)
	require.NoError(t, err)
	_, err = h.Handle(context.Background(), workers.Record{Data: []byte(`{"currency":"XXX"}`)})
	require.True(t, workers.IsPermanent(err))
	_, err = h.Handle(context.Background(), workers.Record{Data: []byte(`nope`)})
	require.True(t, workers.IsPermanent(err))
}

func BenchmarkTransform(b *testing.B) {
	spec := examples.Shop()
	tables, err := transform.NewStaticTables(spec)
	require.NoError(b, err)
	h, err := transform.New(spec.Dataset("orders"), tables)
	require.NoError(b, err)
	rec := workers.Record{Data: []byte(`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`)}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Data)))
	defer cputime.PerOp(b, "", 0)()
	for b.Loop() {
		if _, err := h.Handle(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// shopHandler is the shop pipeline's transform with its lookup tables.
func shopHandler(tb testing.TB) *transform.Handler {
	tb.Helper()
	spec := examples.Shop()
	tables, err := transform.NewStaticTables(spec)
	require.NoError(tb, err)
	h, err := transform.New(spec.Dataset("orders"), tables)
	require.NoError(tb, err)
	return h
}

// validOrders are the generated orders of testdata (jetfleet bench
// --generate) that pass validation: what the transform step gets.
func validOrders(tb testing.TB) [][]byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "orders.ndjson"))
	require.NoError(tb, err)
	vh, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(tb, err)
	var out [][]byte
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte{'\n'}) {
		if vh.Validate(line) == nil {
			out = append(out, line)
		}
	}
	return out
}

// BenchmarkTransformGenerated: the valid generated orders, one at a time.
func BenchmarkTransformGenerated(b *testing.B) {
	h := shopHandler(b)
	recs := validOrders(b)
	b.ReportAllocs()
	defer cputime.PerOp(b, "", 0)()
	n := 0
	for b.Loop() {
		if _, err := h.Handle(context.Background(), workers.Record{Data: recs[n%len(recs)]}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkTransformBulk is the step on bulk chunks of 100 valid
// generated orders as the runtime handles one: split, every record
// through the handler, the outputs joined per partition (the runtime's
// grouping). An op is a chunk; record/cpu-s is records per second of one
// core.
func BenchmarkTransformBulk(b *testing.B) {
	h := shopHandler(b)
	recs := validOrders(b)
	var chunks [][]byte
	for i := 0; i+100 <= len(recs); i += 100 {
		chunks = append(chunks, subjects.JoinBulk(recs[i:i+100]))
	}
	header := nats.Header{subjects.HeaderRecords: []string{"100"}}
	outs := make([]workers.Output, 0, 100)
	groups := map[string][][]byte{}
	b.ReportAllocs()
	defer cputime.PerOp(b, "record", 100)()
	for i := 0; b.Loop(); i++ {
		lines, _ := subjects.SplitBulk(header, chunks[i%len(chunks)])
		outs = outs[:0]
		for j, line := range lines {
			var err error
			if outs, err = h.HandleAppend(context.Background(), &workers.Record{Data: line, Index: j, Bulk: true}, outs); err != nil {
				b.Fatal(err)
			}
		}
		for g := range groups {
			groups[g] = groups[g][:0]
		}
		for _, o := range outs {
			groups[o.Group] = append(groups[o.Group], o.Data)
		}
		for _, recs := range groups {
			_ = subjects.JoinBulk(recs)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func FuzzTransform(f *testing.F) {
	spec := examples.Shop()
	tables, err := transform.NewStaticTables(spec)
	require.NoError(f, err)
	h, err := transform.New(spec.Dataset("orders"), tables)
	require.NoError(f, err)
	for _, s := range []string{
		`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
		`{"currency":"EUR","amount":1e308,"ts":"2026-10-02T08:00:00Z"}`, `{"email":{"a":1}}`, `[]`, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := h.Transform(data)
		if err != nil {
			return
		}
		rec, err := pipeline.DecodeRecord(out)
		require.NoError(t, err, "output is a JSON object")
		_, hasEmail := rec["email"]
		require.False(t, hasEmail, "email never leaves the transform step")
	})
}
