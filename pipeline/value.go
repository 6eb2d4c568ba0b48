package pipeline

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// ValueKind is the JSON kind of a value.
type ValueKind uint8

// The kinds of JSON values. The zero ValueKind is no value: a field that is
// missing.
const (
	KindMissing ValueKind = iota
	KindNull
	KindBool
	KindNumber
	KindString
	KindObject
	KindArray
)

// Name is how error messages name the kind: "a string", "an object"
// (the words of [Kind]).
func (k ValueKind) Name() string {
	switch k {
	case KindNull:
		return "null"
	case KindBool:
		return "a boolean"
	case KindNumber:
		return "a number"
	case KindString:
		return "a string"
	case KindObject:
		return "an object"
	case KindArray:
		return "an array"
	}
	return "missing"
}

// Value is one value of a record's field: as written in the record's
// bytes (a scanned record), or made by a transform (a string, a float),
// or a Go value (a decoded record's, a lookup row's). Values that view a
// record's bytes, or a buffer a transform wrote a string to, are valid as
// long as those bytes are, and never change them.
type Value struct {
	kind ValueKind
	rep  rep
	esc  bool // a raw string holds escapes
	wide bool // a raw string holds non-ASCII
	// s is, for repRaw, the JSON text as written (a string with its
	// quotes), viewing the record; for repStr, the string.
	s  string
	f  float64 // repFloat
	gv any     // repGo: as DecodeRecord gives it (json.Number for numbers)
}

// rep is how a Value holds its value.
type rep uint8

const (
	repRaw rep = iota
	repStr
	repFloat
	repGo
)

// Field is a top-level field of a record.
type Field struct {
	Name  string
	Value Value
	plain bool // Name is written as it is, in quotes
}

// ValueOf wraps a Go value as DecodeRecord or a lookup gives it.
func ValueOf(v any) Value {
	return Value{kind: kindOf(v), rep: repGo, gv: v}
}

// StringValue is a string value (which may view a buffer: see Value).
func StringValue(s string) Value { return Value{kind: KindString, rep: repStr, s: s} }

// StringView is a string value that views b (see Value).
func StringView(b []byte) Value { return StringValue(view(b)) }

// FloatValue is a number an expression computed: it reads as a float64,
// and is written as encoding/json writes a float64.
func FloatValue(f float64) Value { return Value{kind: KindNumber, rep: repFloat, f: f} }

// NumberValue is a number written as lit, which must be a JSON number
// literal (it may view a buffer: see Value).
func NumberValue(lit []byte) Value { return Value{kind: KindNumber, s: view(lit)} }

func kindOf(v any) ValueKind {
	switch v.(type) {
	case nil:
		return KindNull
	case bool:
		return KindBool
	case string:
		return KindString
	case json.Number, float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return KindNumber
	case []any:
		return KindArray
	}
	return KindObject // map[string]any, or a value encoding/json writes
}

// Kind is the value's JSON kind.
func (v Value) Kind() ValueKind { return v.kind }

// IsJSONNumber reports whether v is a number as a record carries one: a
// literal, not a Go float or integer a lookup or expression gave.
func (v Value) IsJSONNumber() bool {
	if v.kind != KindNumber {
		return false
	}
	switch v.rep {
	case repRaw:
		return true
	case repGo:
		_, ok := v.gv.(json.Number)
		return ok
	}
	return false
}

// Str is a string value's text (escapes undone). For a value viewing a
// record's bytes without escapes it is a view of those bytes: valid as
// long as they are.
func (v Value) Str() string {
	switch v.rep {
	case repRaw:
		if !v.esc {
			return v.s[1 : len(v.s)-1]
		}
		return string(unquote(nil, bytesOf(v.s[1:len(v.s)-1])))
	case repStr:
		return v.s
	}
	s, _ := v.gv.(string)
	return s
}

// AppendStr appends a string value's text to dst, escapes undone.
func (v Value) AppendStr(dst []byte) []byte {
	if v.rep == repRaw {
		return unquote(dst, bytesOf(v.s[1:len(v.s)-1]))
	}
	return append(dst, v.Str()...)
}

// Literal is a JSON number's literal (a view, like Str), "" for a Go
// float or integer.
func (v Value) Literal() string {
	switch v.rep {
	case repRaw:
		return v.s
	case repGo:
		if n, ok := v.gv.(json.Number); ok {
			return string(n)
		}
	}
	return ""
}

// Float is a number value as a float64, false unless it is finite.
func (v Value) Float() (float64, bool) {
	if v.kind != KindNumber {
		return 0, false
	}
	switch v.rep {
	case repRaw:
		return parseFloat(v.s)
	case repFloat:
		return v.f, !math.IsNaN(v.f) && !math.IsInf(v.f, 0)
	}
	return AsFloat(v.gv)
}

// ExprFloat is the number an expression sees when it is a float64 (as
// ExprEnv gives it: a JSON number in range, or a Go float64), false
// otherwise (no number, a Go integer, a number out of range).
func (v Value) ExprFloat() (float64, bool) {
	if v.kind != KindNumber {
		return 0, false
	}
	switch v.rep {
	case repRaw:
		return parseFloat(v.s)
	case repFloat:
		return v.f, true
	}
	switch x := v.gv.(type) {
	case json.Number:
		return parseFloat(string(x))
	case float64:
		return x, true
	}
	return 0, false
}

// Bool is a boolean value.
func (v Value) Bool() bool {
	if v.rep == repRaw {
		return v.s[0] == 't'
	}
	b, _ := v.gv.(bool)
	return b
}

// Any is the value as DecodeRecord gives it: json.Number for numbers,
// map[string]any and []any for objects and arrays (and a transform's
// values as it made them).
func (v Value) Any() any {
	switch v.rep {
	case repStr:
		return strings.Clone(v.s) // it may view a buffer
	case repFloat:
		return v.f
	case repGo:
		return v.gv
	}
	switch v.kind {
	case KindNull:
		return nil
	case KindBool:
		return v.Bool()
	case KindNumber:
		return json.Number(strings.Clone(v.s))
	case KindString:
		return string(v.AppendStr(nil))
	}
	dec := json.NewDecoder(strings.NewReader(v.s))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out) // scanned: it is valid JSON
	return out
}

// exprValue is the value as an expression sees it (see ExprEnv): a JSON
// number as float64 (one out of range as nil), the rest as Any.
func (v Value) exprValue() any {
	if v.IsJSONNumber() {
		if f, ok := v.ExprFloat(); ok {
			return f
		}
		return nil
	}
	return v.Any()
}

// Describe renders a value for an error message as [Describe] does.
func (v Value) Describe() string {
	if v.rep == repFloat {
		return Describe(v.f)
	}
	switch v.kind {
	case KindString:
		return describeString(v.Str())
	case KindNumber:
		if lit := v.Literal(); lit != "" {
			return describeNumber(lit)
		}
	case KindNull:
		return "null"
	case KindBool:
		return strconv.FormatBool(v.Bool())
	case KindObject, KindArray:
		return v.kind.Name()
	}
	return Describe(v.gv)
}

// AppendDescribe appends what Describe returns.
func (v Value) AppendDescribe(dst []byte) []byte {
	if v.rep == repFloat {
		return append(dst, v.Describe()...)
	}
	switch v.kind {
	case KindString:
		return AppendDescribeString(dst, v.Str())
	case KindNumber:
		if lit := v.Literal(); lit != "" {
			return appendDescribeNumber(dst, lit)
		}
	}
	return append(dst, v.Describe()...)
}

// AppendDescribeString appends a string rendered for an error message as
// [Describe] renders it: quoted, cut after 37 bytes.
func AppendDescribeString(dst []byte, s string) []byte {
	if len(s) > 40 {
		return strconv.AppendQuote(dst, s[:37]+"...")
	}
	return strconv.AppendQuote(dst, s)
}

func describeString(s string) string { return string(AppendDescribeString(nil, s)) }

func appendDescribeNumber(dst []byte, s string) []byte {
	if len(s) > 40 {
		return append(append(dst, s[:37]...), "..."...)
	}
	return append(dst, s...)
}

func describeNumber(s string) string { return string(appendDescribeNumber(nil, s)) }

// bytesOf is the bytes of s, shared, for reading only.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// view is a string that shares b's bytes: for reading record bytes that
// nothing changes, without a copy. It must not outlive b.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// unquote appends the text of a JSON string's contents (between the
// quotes, already scanned) to dst, escapes undone as encoding/json does:
// a lone surrogate becomes U+FFFD.
func unquote(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			j := bytes.IndexByte(s[i:], '\\')
			if j < 0 {
				return append(dst, s[i:]...)
			}
			dst = append(dst, s[i:i+j]...)
			i += j
			continue
		}
		switch e := s[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if dec := utf16.DecodeRune(r, hex4(s[i+2:i+6])); dec != unicode.ReplacementChar {
						i += 6
						dst = utf8.AppendRune(dst, dec)
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		default:
			c = c - 'A' + 10
		}
		r = r*16 + rune(c)
	}
	return r
}
