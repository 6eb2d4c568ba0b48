package validate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/expr-lang/expr"

	"github.com/jetfleet/jetfleet/pipeline"
)

// maxSafeInteger is the largest integer a float64 (and so DuckDB's DOUBLE,
// JavaScript, and most JSON readers) holds exactly.
const maxSafeInteger = 1 << 53

// rule is a pipeline rule with the text of its messages prepared, so that
// checking a record allocates nothing and a failure one string.
type rule struct {
	*pipeline.Rule
	enumList string // ", "-joined allowed values
	strEnum  []string
	numEnum  []float64
	minText  string
	maxText  string
}

func compile(rules []*pipeline.Rule) []rule {
	out := make([]rule, len(rules))
	for i, r := range rules {
		c := rule{Rule: r}
		parts := make([]string, len(r.Enum))
		for j, e := range r.Enum {
			switch x := e.(type) {
			case float64:
				parts[j] = fmtFloat(x)
				c.numEnum = append(c.numEnum, x)
			case string:
				parts[j] = x
				c.strEnum = append(c.strEnum, x)
			default:
				parts[j] = fmt.Sprint(x)
			}
		}
		c.enumList = strings.Join(parts, ", ")
		if r.Min != nil {
			c.minText = fmtFloat(*r.Min)
		}
		if r.Max != nil {
			c.maxText = fmtFloat(*r.Max)
		}
		out[i] = c
	}
	return out
}

// Check runs every rule of rules against rec and returns the failures, in
// rule order; nil means the record is valid.
func Check(rules []*pipeline.Rule, rec pipeline.Record) []Failure {
	var (
		f  pipeline.Fields
		sc scratch
	)
	f.FromRecord(rec)
	var e *Error
	sc.check(compile(rules), &f, &e)
	if e == nil {
		return nil
	}
	return e.Failures
}

// scratch is the memory one check uses; a handler pools it.
type scratch struct {
	fields pipeline.Fields
	norm   []byte // a normalised string
	msg    []byte // the message being built
}

// check adds every failure of f against rules to *e, which it creates on
// the first.
func (sc *scratch) check(rules []rule, f *pipeline.Fields, e **Error) {
	var env map[string]any // built once, on the first expression rule
	for i := range rules {
		r := &rules[i]
		if r.Program != nil {
			if env == nil {
				env = f.Env()
			}
			if msg := checkExpr(r, env); msg != "" {
				add(e, Failure{Rule: r.Name, Msg: msg})
			}
			continue
		}
		v, present := f.Get(r.Field)
		sc.msg = sc.msg[:0]
		if !sc.checkField(r, v, present) {
			continue
		}
		msg := string(sc.msg)
		if r.Message != "" {
			msg = r.Message
		}
		add(e, Failure{Rule: r.Name, Msg: msg})
	}
}

func add(e **Error, f Failure) {
	if *e == nil {
		*e = &Error{}
	}
	(*e).add(f)
}

func checkExpr(r *rule, env map[string]any) string {
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

// checkField writes what is wrong with r's field to sc.msg and reports
// whether anything is.
func (sc *scratch) checkField(r *rule, v pipeline.Value, present bool) bool {
	if !present || v.Kind() == pipeline.KindNull {
		if !r.Required {
			return false
		}
		if present {
			sc.msg = append(sc.msg, "required, is null"...)
		} else {
			sc.msg = append(sc.msg, "required, missing"...)
		}
		return true
	}
	switch r.Type {
	case pipeline.TypeString:
		if v.Kind() != pipeline.KindString {
			sc.msg = append(append(append(sc.msg, "is "...), v.Kind().Name()...), ", want a string"...)
			return true
		}
		return sc.checkString(r, v.Str())
	case pipeline.TypeNumber, pipeline.TypeInteger:
		lit := v.Literal()
		if v.Kind() != pipeline.KindNumber || lit == "" {
			sc.msg = append(v.AppendDescribe(append(append(append(sc.msg, "is "...), v.Kind().Name()...), ' ')), ", want a number"...)
			return true
		}
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil || math.IsInf(f, 0) {
			sc.msg = append(append(append(sc.msg, "number "...), v.Describe()...), " is out of range"...)
			return true
		}
		if r.Type == pipeline.TypeInteger && (f != math.Trunc(f) || math.Abs(f) > maxSafeInteger) {
			sc.msg = append(v.AppendDescribe(sc.msg), " is not an integer within ±2^53"...)
			return true
		}
		return sc.checkNumber(r, v, f)
	case pipeline.TypeBool:
		if v.Kind() != pipeline.KindBool {
			sc.msg = append(append(append(sc.msg, "is "...), v.Kind().Name()...), ", want true or false"...)
			return true
		}
	case pipeline.TypeTimestamp:
		if _, ok := r.Time.ParseValue(v); !ok {
			sc.msg = append(sc.msg, r.Time.ErrorText(v)...)
			return true
		}
	case pipeline.TypeObject:
		if v.Kind() != pipeline.KindObject {
			sc.msg = append(append(append(sc.msg, "is "...), v.Kind().Name()...), ", want an object"...)
			return true
		}
	case pipeline.TypeArray:
		if v.Kind() != pipeline.KindArray {
			sc.msg = append(append(append(sc.msg, "is "...), v.Kind().Name()...), ", want an array"...)
			return true
		}
	}
	return false
}

// problem starts one more problem of a field in sc.msg.
func (sc *scratch) problem() {
	if len(sc.msg) > 0 {
		sc.msg = append(sc.msg, ", "...)
	}
}

func (sc *scratch) checkString(r *rule, s string) bool {
	s, sc.norm = pipeline.AppendNormalize(sc.norm, s, r.Normalize)
	n := -1 // rune count, computed once if needed
	count := func() int {
		if n < 0 {
			n = utf8.RuneCountInString(s)
		}
		return n
	}
	if r.MinLength != nil && count() < *r.MinLength {
		sc.problem()
		if *r.MinLength == 1 {
			sc.msg = append(sc.msg, "is empty"...)
		} else {
			sc.msg = strconv.AppendInt(append(pipeline.AppendDescribeString(sc.msg, s), " is shorter than "...), int64(*r.MinLength), 10)
			sc.msg = append(sc.msg, " characters"...)
		}
	}
	if r.MaxLength != nil && count() > *r.MaxLength {
		sc.problem()
		sc.msg = strconv.AppendInt(append(sc.msg, "is "...), int64(count()), 10)
		sc.msg = strconv.AppendInt(append(sc.msg, " characters, longer than "...), int64(*r.MaxLength), 10)
	}
	if len(r.Enum) > 0 && !inStrings(r.strEnum, s) {
		sc.problem()
		sc.msg = append(append(pipeline.AppendDescribeString(sc.msg, s), " is not one of "...), r.enumList...)
	}
	if r.Regex != nil && !r.Regex.MatchString(s) {
		sc.problem()
		sc.msg = append(append(pipeline.AppendDescribeString(sc.msg, s), " does not match "...), r.Regex.String()...)
	}
	return len(sc.msg) > 0
}

func (sc *scratch) checkNumber(r *rule, v pipeline.Value, f float64) bool {
	if r.Min != nil && f < *r.Min {
		sc.problem()
		sc.msg = append(append(v.AppendDescribe(sc.msg), " is below the minimum "...), r.minText...)
	}
	if r.Max != nil && f > *r.Max {
		sc.problem()
		sc.msg = append(append(v.AppendDescribe(sc.msg), " is above the maximum "...), r.maxText...)
	}
	if len(r.Enum) > 0 && !inFloats(r.numEnum, f) {
		sc.problem()
		sc.msg = append(append(v.AppendDescribe(sc.msg), " is not one of "...), r.enumList...)
	}
	return len(sc.msg) > 0
}

func inStrings(enum []string, s string) bool {
	for _, e := range enum {
		if e == s {
			return true
		}
	}
	return false
}

func inFloats(enum []float64, f float64) bool {
	for _, e := range enum {
		if e == f {
			return true
		}
	}
	return false
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
