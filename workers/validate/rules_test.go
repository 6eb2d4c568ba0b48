package validate_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/validate"
)

func dataset(t testing.TB, rules string) *pipeline.Dataset {
	t.Helper()
	spec, err := pipeline.Parse("t.yaml", []byte("name: t\ndatasets:\n  d:\n    key: id\n    schema: [{name: id, type: VARCHAR}]\n    validate:\n"+rules))
	require.NoError(t, err)
	return spec.Datasets[0]
}

// TestRules: one case per rule kind and edge: what passes, what fails and
// the exact reason.
func TestRules(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, rule, rec string
		want            string // "" = valid; else the reason after "validation failed: "
	}{
		{"required present", `{field: a, required: true}`, `{"a":0}`, ""},
		{"required missing", `{field: a, required: true}`, `{}`, "a: required, missing"},
		{"required null", `{field: a, required: true}`, `{"a":null}`, "a: required, is null"},
		{"optional missing skips checks", `{field: a, type: number, min: 5}`, `{}`, ""},
		{"optional null skips checks", `{field: a, type: string, min_length: 3}`, `{"a":null}`, ""},

		{"string ok", `{field: a, type: string}`, `{"a":"x"}`, ""},
		{"string empty ok", `{field: a, type: string}`, `{"a":""}`, ""},
		{"string got number", `{field: a, type: string}`, `{"a":1}`, "a: is a number, want a string"},
		{"string got object", `{field: a, type: string}`, `{"a":{"b":"c"}}`, "a: is an object, want a string"},
		{"string got array", `{field: a, type: string}`, `{"a":["x"]}`, "a: is an array, want a string"},
		{"string got bool", `{field: a, type: string}`, `{"a":true}`, "a: is a boolean, want a string"},
		{"non-empty", `{field: a, type: string, min_length: 1}`, `{"a":""}`, "a: is empty"},
		{"non-empty space ok", `{field: a, type: string, min_length: 1}`, `{"a":" "}`, ""},
		{"min_length after trim", `{field: a, type: string, normalize: [trim], min_length: 1}`, `{"a":"  "}`, "a: is empty"},
		{"min_length 3", `{field: a, type: string, min_length: 3}`, `{"a":"ab"}`, `a: "ab" is shorter than 3 characters`},
		{"max_length runes", `{field: a, type: string, max_length: 3}`, `{"a":"äöü"}`, ""},
		{"max_length emoji", `{field: a, type: string, max_length: 3}`, `{"a":"🚀🚀🚀🚀"}`, "a: is 4 characters, longer than 3"},

		{"number int", `{field: a, type: number}`, `{"a":10}`, ""},
		{"number float", `{field: a, type: number}`, `{"a":5.5}`, ""},
		{"number exp", `{field: a, type: number}`, `{"a":1e3}`, ""},
		{"number numeric string", `{field: a, type: number}`, `{"a":"7"}`, `a: is a string "7", want a number`},
		{"number NaN string", `{field: a, type: number}`, `{"a":"NaN"}`, `a: is a string "NaN", want a number`},
		{"number Inf string", `{field: a, type: number}`, `{"a":"Infinity"}`, `a: is a string "Infinity", want a number`},
		{"number huge", `{field: a, type: number}`, `{"a":1e400}`, "a: number 1e400 is out of range"},
		{"number huge negative", `{field: a, type: number}`, `{"a":-1e400}`, "a: number -1e400 is out of range"},
		{"number tiny underflows ok", `{field: a, type: number}`, `{"a":1e-400}`, ""},
		{"number bool", `{field: a, type: number}`, `{"a":false}`, "a: is a boolean false, want a number"},
		{"min ok", `{field: a, type: number, min: 0}`, `{"a":0}`, ""},
		{"min negative zero", `{field: a, type: number, min: 0}`, `{"a":-0}`, ""},
		{"min fail", `{field: a, type: number, min: 0}`, `{"a":-1}`, "a: -1 is below the minimum 0"},
		{"min fail tiny", `{field: a, type: number, min: 0}`, `{"a":-0.000001}`, "a: -0.000001 is below the minimum 0"},
		{"max fail", `{field: a, type: number, max: 100}`, `{"a":100.5}`, "a: 100.5 is above the maximum 100"},
		{"range both", `{field: a, type: number, min: 1, max: 2}`, `{"a":1.5}`, ""},
		{"number enum", `{field: a, type: number, enum: [1, 2.5]}`, `{"a":2.5}`, ""},
		{"number enum fail", `{field: a, type: number, enum: [1, 2.5]}`, `{"a":3}`, "a: 3 is not one of 1, 2.5"},

		{"integer ok", `{field: a, type: integer}`, `{"a":42}`, ""},
		{"integer 1.0 ok", `{field: a, type: integer}`, `{"a":1.0}`, ""},
		{"integer 1e3 ok", `{field: a, type: integer}`, `{"a":1e3}`, ""},
		{"integer fraction", `{field: a, type: integer}`, `{"a":1.5}`, "a: 1.5 is not an integer within ±2^53"},
		{"integer too big", `{field: a, type: integer}`, `{"a":12345678901234567890}`, "a: 12345678901234567890 is not an integer within ±2^53"},
		{"integer max safe", `{field: a, type: integer}`, `{"a":9007199254740992}`, ""},

		{"bool ok", `{field: a, type: bool}`, `{"a":false}`, ""},
		{"bool string", `{field: a, type: bool}`, `{"a":"true"}`, "a: is a string, want true or false"},

		{"timestamp ok", `{field: a, type: timestamp}`, `{"a":"2026-10-01T10:00:00+02:00"}`, ""},
		{"timestamp no offset", `{field: a, type: timestamp}`, `{"a":"2026-10-01T10:00:00"}`, `a: "2026-10-01T10:00:00" is not a timestamp in format rfc3339`},
		{"timestamp number", `{field: a, type: timestamp}`, `{"a":1790000000}`, `a: 1790000000 is not a timestamp in format rfc3339`},
		{"timestamp unix", `{field: a, type: timestamp, formats: [unix]}`, `{"a":1790000000}`, ""},
		{"timestamp empty", `{field: a, type: timestamp}`, `{"a":""}`, `a: "" is not a timestamp`},

		{"object ok", `{field: a, type: object}`, `{"a":{"b":{"c":1}}}`, ""},
		{"object got array", `{field: a, type: object}`, `{"a":[]}`, "a: is an array, want an object"},
		{"array ok", `{field: a, type: array}`, `{"a":[1,"x",null]}`, ""},

		{"enum after normalize", `{field: c, type: string, normalize: [trim, upper], enum: [USD, EUR]}`, `{"c":" usd "}`, ""},
		{"enum fail", `{field: c, type: string, normalize: [trim, upper], enum: [USD, EUR]}`, `{"c":"BTC"}`, `c: "BTC" is not one of USD, EUR`},
		{"enum empty string", `{field: c, type: string, enum: [USD]}`, `{"c":""}`, `c: "" is not one of USD`},
		{"enum no normalize is exact", `{field: c, type: string, enum: [USD]}`, `{"c":"usd"}`, `c: "usd" is not one of USD`},
		{"regex ok", `{field: c, type: string, normalize: [trim, upper], regex: '^[A-Z]{2}$'}`, `{"c":" us"}`, ""},
		{"regex 3 letters", `{field: c, type: string, normalize: [trim, upper], regex: '^[A-Z]{2}$'}`, `{"c":"USA"}`, `c: "USA" does not match ^[A-Z]{2}$`},
		{"regex fullwidth", `{field: c, type: string, normalize: [trim, upper], regex: '^[A-Z]{2}$'}`, `{"c":"ｕｓ"}`, `c: "ＵＳ" does not match ^[A-Z]{2}$`},
		{"regex unicode class", `{field: c, type: string, regex: '^\p{L}+$'}`, `{"c":"Zoë"}`, ""},
		{"custom message", `{field: a, type: number, min: 0, message: must not be negative}`, `{"a":-3}`, "a: must not be negative"},
		{"untyped any value", `{field: a, required: true}`, `{"a":[{"x":1}]}`, ""},
		{"field with dot is top-level", `{field: a.b, required: true}`, `{"a":{"b":1}}`, "a.b: required, missing"},

		{"expr ok", `{name: positive, expr: 'amount > 0'}`, `{"amount":3}`, ""},
		{"expr false", `{name: positive, expr: 'amount > 0'}`, `{"amount":-3}`, "positive: is false"},
		{"expr message", `{name: positive, expr: 'amount > 0', message: amount must be positive}`, `{"amount":-3}`, "positive: amount must be positive"},
		{"expr default name", `{expr: 'a == b'}`, `{"a":1,"b":2}`, "expr a == b: is false"},
		{"expr missing field nil", `{name: r, expr: 'a == nil'}`, `{}`, ""},
		{"expr type error", `{name: r, expr: 'a > 1'}`, `{"a":"x"}`, "r: expression failed: invalid operation"},
		{"expr nested", `{name: r, expr: 'a.b == "c"'}`, `{"a":{"b":"c"}}`, ""},
		{"expr string funcs", `{name: r, expr: 'upper(trim(c)) in ["US", "DE"]'}`, `{"c":" de "}`, ""},
		{"expr huge number is nil", `{name: r, expr: 'a == nil'}`, `{"a":1e400}`, ""},
		{"expr non-bool", `{name: r, expr: 'a'}`, `{"a":"yes"}`, "r: expression failed"},
		{"expr unicode", `{name: r, expr: 'len(name) == 3'}`, `{"name":"Zoë"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, err := validate.New(dataset(t, "      - "+tc.rule+"\n"))
			require.NoError(t, err)
			err = h.Validate([]byte(tc.rec))
			if tc.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, validate.ErrInvalidRecord)
			require.True(t, strings.HasPrefix(err.Error(), "validation failed: "+tc.want), "got %q", err.Error())
		})
	}
}

// TestEveryFailureReported: the reason lists every failed rule, in order.
func TestEveryFailureReported(t *testing.T) {
	t.Parallel()
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(t, err)
	err = h.Validate([]byte(`{"order_id":"","amount":"7","currency":"BTC","country":"USA","ts":"yesterday","email":42}`))
	var verr *validate.Error
	require.ErrorAs(t, err, &verr)
	var rules []string
	for _, f := range verr.Failures {
		rules = append(rules, f.Rule)
	}
	require.Equal(t, []string{"order_id", "customer_id", "amount", "currency", "country", "ts", "email"}, rules)
	require.True(t, strings.HasPrefix(err.Error(), "validation failed (7 rules): order_id: is empty; customer_id: required, missing; amount: is a string \"7\", want a number;"), err.Error())
}

// TestShopRules: the shop demo's exact semantics.
func TestShopRules(t *testing.T) {
	t.Parallel()
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(t, err)
	valid := []string{
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","country":"DE","ts":"2026-10-01T23:30:00-02:00"}`,
		`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
		`{"order_id":"s-9","customer_id":"c-9","amount":0,"currency":"GBP","country":" gb ","ts":"2026-10-02T08:00:00.5+01:00","extra":{"nested":[1]}}`,
	}
	for _, v := range valid {
		require.NoError(t, h.Validate([]byte(v)), v)
	}
	for rec, reason := range map[string]string{
		`{"order_id":"s-5","customer_id":"c-3","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`:  "amount: -1 is below the minimum 0",
		`{"order_id":"s-6","customer_id":"c-3","amount":"7","currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`: `amount: is a string "7", want a number`,
		`this line is not json`: "record is not valid JSON",
		`{"order_id":"s-8","customer_id":"c-3","amount":7,"currency":"BTC","country":"US","ts":"2026-10-01T10:00:00Z"}`: `currency: "BTC" is not one of USD, EUR, GBP`,
		`{"order_id":1,"customer_id":"c-3","amount":7,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`:     "order_id: is a number, want a string",
		`{"order_id":"s","customer_id":"c-3","amount":7,"currency":"USD","country":"U1","ts":"2026-10-01T10:00:00Z"}`:   `country: "U1" does not match`,
		`{"order_id":"s","customer_id":"c-3","amount":7,"currency":"USD","country":"US","ts":"2026-10-01 10:00:00Z"}`:   "ts: ",
		`[{"order_id":"s"}]`:           "record is not a JSON object: got an array",
		"{\"order_id\":\"s\xc3\x28\"}": "record is not valid UTF-8",
	} {
		err := h.Validate([]byte(rec))
		require.ErrorContains(t, err, reason, rec)
	}
}

func FuzzRules(f *testing.F) {
	ds := examples.Shop().Dataset("orders")
	extra := dataset(f, "      - {name: r, expr: 'amount * 2 > 1 && len(order_id) < 10'}\n      - {field: n, type: integer, enum: [1, 2]}\n")
	rules := append(append([]*pipeline.Rule{}, ds.Rules...), extra.Rules...)
	for _, s := range []string{
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
		`{"amount":1e400,"n":1.5}`, `{"amount":"7"}`, `[]`, `{}`, "\xff", `{"ts":"2026-02-30T00:00:00Z"}`, `{"country":"ｕｓ"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := pipeline.DecodeRecord(data)
		if err != nil {
			return
		}
		fails := validate.Check(rules, rec)
		for _, fl := range fails {
			require.NotEmpty(t, fl.Rule)
			require.NotEmpty(t, fl.Msg)
		}
		again := validate.Check(rules, rec)
		require.Equal(t, fails, again, "rules are deterministic")
	})
}
