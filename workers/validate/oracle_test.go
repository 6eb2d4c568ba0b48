package validate_test

// This is the map-based rule checker validate had before issue 15, kept
// as the oracle of FuzzValidateReasons: the scanning checker must give
// every record the same reasons.

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// maxSafeInteger is the largest integer a float64 (and so DuckDB's DOUBLE,
// JavaScript, and most JSON readers) holds exactly.
const oldMaxSafeInteger = 1 << 53

// Check runs every rule of rules against rec and returns the failures, in
// rule order; nil means the record is valid.
func oldCheck(rules []*pipeline.Rule, rec pipeline.Record) []validate.Failure {
	var (
		fails []validate.Failure
		env   map[string]any // built once, on the first expression rule
	)
	for _, r := range rules {
		if r.Program != nil {
			if env == nil {
				env = pipeline.ExprEnv(rec)
			}
			if msg := checkExpr(r, env); msg != "" {
				fails = append(fails, validate.Failure{Rule: r.Name, Msg: msg})
			}
			continue
		}
		if msg := checkField(r, rec); msg != "" {
			if r.Message != "" {
				msg = r.Message
			}
			fails = append(fails, validate.Failure{Rule: r.Name, Msg: msg})
		}
	}
	return fails
}

func checkExpr(r *pipeline.Rule, env map[string]any) string {
	out, err := expr.Run(r.Program, env)
	if err != nil {
		// expr's error has the source and a caret on following lines.
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return "expression failed: " + msg
	}
	if b, ok := out.(bool); ok && b {
		return ""
	}
	if r.Message != "" {
		return r.Message
	}
	return "is false"
}

// checkField returns what is wrong with r's field in rec, or "".
func checkField(r *pipeline.Rule, rec pipeline.Record) string {
	v, present := rec[r.Field]
	if !present || v == nil {
		if r.Required {
			if present {
				return "required, is null"
			}
			return "required, missing"
		}
		return ""
	}
	switch r.Type {
	case pipeline.TypeString:
		s, ok := v.(string)
		if !ok {
			return fmt.Sprintf("is %s, want a string", pipeline.Kind(v))
		}
		return checkString(r, s)
	case pipeline.TypeNumber, pipeline.TypeInteger:
		n, ok := v.(json.Number)
		if !ok {
			return fmt.Sprintf("is %s %s, want a number", pipeline.Kind(v), pipeline.Describe(v))
		}
		f, err := strconv.ParseFloat(n.String(), 64)
		if err != nil || math.IsInf(f, 0) {
			return fmt.Sprintf("number %s is out of range", pipeline.Describe(n))
		}
		if r.Type == pipeline.TypeInteger && (f != math.Trunc(f) || math.Abs(f) > oldMaxSafeInteger) {
			return fmt.Sprintf("%s is not an integer within ±2^53", pipeline.Describe(n))
		}
		return checkNumber(r, n, f)
	case pipeline.TypeBool:
		if _, ok := v.(bool); !ok {
			return fmt.Sprintf("is %s, want true or false", pipeline.Kind(v))
		}
	case pipeline.TypeTimestamp:
		if _, err := r.Time.Parse(v); err != nil {
			return err.Error()
		}
	case pipeline.TypeObject:
		if _, ok := v.(map[string]any); !ok {
			return fmt.Sprintf("is %s, want an object", pipeline.Kind(v))
		}
	case pipeline.TypeArray:
		if _, ok := v.([]any); !ok {
			return fmt.Sprintf("is %s, want an array", pipeline.Kind(v))
		}
	}
	return ""
}

func checkString(r *pipeline.Rule, s string) string {
	s = pipeline.Normalize(s, r.Normalize)
	n := -1 // rune count, computed once if needed
	count := func() int {
		if n < 0 {
			n = utf8.RuneCountInString(s)
		}
		return n
	}
	var probs []string
	if r.MinLength != nil && count() < *r.MinLength {
		if *r.MinLength == 1 {
			probs = append(probs, "is empty")
		} else {
			probs = append(probs, fmt.Sprintf("%s is shorter than %d characters", pipeline.Describe(s), *r.MinLength))
		}
	}
	if r.MaxLength != nil && count() > *r.MaxLength {
		probs = append(probs, fmt.Sprintf("is %d characters, longer than %d", count(), *r.MaxLength))
	}
	if len(r.Enum) > 0 && !inEnum(r.Enum, s) {
		probs = append(probs, fmt.Sprintf("%s is not one of %s", pipeline.Describe(s), enumList(r.Enum)))
	}
	if r.Regex != nil && !r.Regex.MatchString(s) {
		probs = append(probs, fmt.Sprintf("%s does not match %s", pipeline.Describe(s), r.Regex))
	}
	return strings.Join(probs, ", ")
}

func checkNumber(r *pipeline.Rule, n json.Number, f float64) string {
	var probs []string
	if r.Min != nil && f < *r.Min {
		probs = append(probs, fmt.Sprintf("%s is below the minimum %s", pipeline.Describe(n), fmtFloat(*r.Min)))
	}
	if r.Max != nil && f > *r.Max {
		probs = append(probs, fmt.Sprintf("%s is above the maximum %s", pipeline.Describe(n), fmtFloat(*r.Max)))
	}
	if len(r.Enum) > 0 && !inEnum(r.Enum, f) {
		probs = append(probs, fmt.Sprintf("%s is not one of %s", pipeline.Describe(n), enumList(r.Enum)))
	}
	return strings.Join(probs, ", ")
}

func inEnum(enum []any, v any) bool {
	for _, e := range enum {
		if e == v {
			return true
		}
	}
	return false
}

func enumList(enum []any) string {
	parts := make([]string, len(enum))
	for i, e := range enum {
		if f, ok := e.(float64); ok {
			parts[i] = fmtFloat(f)
		} else {
			parts[i] = fmt.Sprint(e)
		}
	}
	return strings.Join(parts, ", ")
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// FuzzValidateReasons: the step accepts what the pre-issue-15 checker
// accepted and gives what it rejects the same reason, for the shop rules
// and rules of every other kind.
func FuzzValidateReasons(f *testing.F) {
	spec, err := pipeline.Parse("t.yaml", []byte(`name: t
datasets:
  d:
    key: id
    schema: [{name: id, type: VARCHAR}]
    validate:
      - {field: order_id, required: true, type: string, min_length: 1}
      - {field: customer_id, required: true, type: string, min_length: 1}
      - {field: amount, required: true, type: number, min: 0}
      - {field: currency, required: true, type: string, normalize: [trim, upper], enum: [USD, EUR, GBP]}
      - {field: country, required: true, type: string, normalize: [trim, upper], regex: '^[A-Z]{2}$'}
      - {field: ts, required: true, type: timestamp, formats: [rfc3339]}
      - {field: email, type: string, max_length: 254}
      - {field: n, type: integer, enum: [1, 2], max: 5}
      - {field: s, type: string, normalize: [lower, trim], min_length: 3, max_length: 5, message: bad s}
      - {field: b, type: bool}
      - {field: o, type: object}
      - {field: a, type: array}
      - {field: u, type: timestamp, formats: [unix, date, "02.01.2006"], timezone: Europe/Berlin}
      - {name: r, expr: 'amount * 2 > 1 && len(order_id) < 10'}
`))
	require.NoError(f, err)
	rules := spec.Datasets[0].Rules
	h, err := validate.New(spec.Datasets[0])
	require.NoError(f, err)
	for _, s := range []string{
		`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
		`{"order_id":"","amount":"7","currency":"BTC","country":"USA","ts":"yesterday","email":42,"n":1.5,"s":" ABCDEFG ","b":"x","o":[],"a":{},"u":"1790000000"}`,
		`{"amount":1e400,"n":3,"s":"É","u":"2026-10-01"}`, `{"amount":-0.5,"n":12345678901234567890,"u":"01.07.2026"}`,
		`{"currency":"\u0075sd","country":"ｕｓ","order_id":null,"ts":"2026-02-30T00:00:00Z"}`,
		`{"ts":"2026-10-01T10:00:00.123+01:00","u":-1e12,"email":"` + strings.Repeat("é", 300) + `"}`,
		`[]`, `{}`, "\xff", `not json`, `{"a":` + strings.Repeat("[", 70),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want string
		if rec, err := pipeline.DecodeRecord(data); err != nil {
			want = err.Error()
		} else if fails := oldCheck(rules, rec); len(fails) > 0 {
			want = (&validate.Error{Failures: fails}).Error()
		}
		err := h.Validate(data)
		if want == "" {
			require.NoError(t, err)
			return
		}
		require.EqualError(t, err, want)
	})
}
