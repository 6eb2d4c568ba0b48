package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
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
// bytes (a scanned record) or as a Go value (a decoded record, or one a
// transform set). Values that view a record's bytes are valid as long as
// those bytes are, and never change them.
type Value struct {
	kind ValueKind
	// raw is the value's JSON text when it views the record (a string
	// with its quotes); esc says such a string holds escapes.
	raw []byte
	esc bool
	// gv is the value otherwise, as DecodeRecord gives it (json.Number
	// for numbers) or as a transform set it (a float64 from derive, a
	// row's value from a lookup).
	gv any
}

// Field is a top-level field of a record.
type Field struct {
	Name  string
	Value Value
}

// ValueOf wraps a Go value as DecodeRecord or a transform gives it.
func ValueOf(v any) Value {
	return Value{kind: kindOf(v), gv: v}
}

// StringValue is a string value.
func StringValue(s string) Value { return Value{kind: KindString, gv: s} }

// NumberValue is a number value written as lit, which must be a JSON
// number literal.
func NumberValue(lit string) Value { return Value{kind: KindNumber, gv: json.Number(lit)} }

func kindOf(v any) ValueKind {
	switch x := v.(type) {
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
	case map[string]any:
		return KindObject
	default:
		_ = x
		return KindObject // anything else encodes as an object or fails to
	}
}

// Kind is the value's JSON kind.
func (v Value) Kind() ValueKind { return v.kind }

// Str is a string value's text (escapes undone). For a value viewing a
// record's bytes without escapes it is a view of those bytes: valid as
// long as they are.
func (v Value) Str() string {
	if v.raw != nil {
		if !v.esc {
			return view(v.raw[1 : len(v.raw)-1])
		}
		return string(unquote(nil, v.raw[1:len(v.raw)-1]))
	}
	s, _ := v.gv.(string)
	return s
}

// AppendStr appends a string value's text to dst, escapes undone.
func (v Value) AppendStr(dst []byte) []byte {
	if v.raw != nil {
		return unquote(dst, v.raw[1:len(v.raw)-1])
	}
	s, _ := v.gv.(string)
	return append(dst, s...)
}

// Literal is a number value as written (a view, like Str), "" for a Go
// float or integer.
func (v Value) Literal() string {
	if v.raw != nil {
		return view(v.raw)
	}
	if n, ok := v.gv.(json.Number); ok {
		return string(n)
	}
	return ""
}

// Float is a number value as a float64, false unless it is finite.
func (v Value) Float() (float64, bool) {
	if v.kind != KindNumber {
		return 0, false
	}
	if v.raw != nil {
		return parseFloat(view(v.raw))
	}
	return AsFloat(v.gv)
}

// Bool is a boolean value.
func (v Value) Bool() bool {
	if v.raw != nil {
		return v.raw[0] == 't'
	}
	b, _ := v.gv.(bool)
	return b
}

// Any is the value as DecodeRecord gives it: json.Number for numbers,
// map[string]any and []any for objects and arrays.
func (v Value) Any() any {
	if v.raw == nil {
		return v.gv
	}
	switch v.kind {
	case KindNull:
		return nil
	case KindBool:
		return v.Bool()
	case KindNumber:
		return json.Number(string(v.raw))
	case KindString:
		return string(v.AppendStr(nil))
	}
	dec := json.NewDecoder(bytes.NewReader(v.raw))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out) // scanned: it is valid JSON
	return out
}

// exprValue is the value as an expression sees it: a number as float64
// (one out of range as nil), the rest as [Value.Any].
func (v Value) exprValue() any {
	if v.kind == KindNumber {
		switch x := v.gv.(type) {
		case float64, float32, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
			return x
		}
		if f, ok := v.Float(); ok {
			return f
		}
		return nil
	}
	return v.Any()
}

// Describe renders a value for an error message as [Describe] does.
func (v Value) Describe() string {
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
	return describe(v.gv)
}

// AppendDescribe appends what Describe returns.
func (v Value) AppendDescribe(dst []byte) []byte {
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

// fieldsFromRecord takes a decoded record apart, for records the scanner
// leaves to DecodeRecord.
func fieldsFromRecord(rec Record, out []Field) []Field {
	for k, v := range rec {
		out = append(out, Field{Name: k, Value: ValueOf(v)})
	}
	return out
}

// AppendJSON appends the value as encoding/json writes it into a clean
// record (compact, object keys sorted, <, > and & not escaped), so that
// a record comes out the same whichever way it went in.
func (v Value) AppendJSON(dst []byte) ([]byte, error) {
	if v.raw == nil {
		return appendAny(dst, v.gv)
	}
	switch v.kind {
	case KindString:
		if !v.esc && !hasLineSep(v.raw) {
			return append(dst, v.raw...), nil // already as encoding/json writes it
		}
		return appendString(dst, unquote(nil, v.raw[1:len(v.raw)-1])), nil
	case KindObject, KindArray:
		return appendCanonical(dst, v.raw)
	}
	return append(dst, v.raw...), nil
}

// hasLineSep reports whether b holds U+2028 or U+2029, which encoding/json
// escapes.
func hasLineSep(b []byte) bool {
	for {
		i := bytes.IndexByte(b, 0xE2)
		if i < 0 || i+2 >= len(b) {
			return false
		}
		if b[i+1] == 0x80 && (b[i+2] == 0xA8 || b[i+2] == 0xA9) {
			return true
		}
		b = b[i+1:]
	}
}

// appendCanonical re-encodes a scanned object or array as encoding/json
// would after decoding it: keys sorted, duplicates last-wins, compact.
func appendCanonical(dst, raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return dst, err
	}
	return appendAny(dst, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped.
func appendString[S []byte | string](dst []byte, s S) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendFloat appends f as encoding/json does: the shortest
// representation, exponent form only below 1e-6 or from 1e21, with a
// two-digit negative exponent shortened (1e-07 as 1e-7).
func appendFloat(dst []byte, f float64, bits int) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, bits)}
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	dst = strconv.AppendFloat(dst, f, format, -1, bits)
	if format == 'e' {
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendAny appends a Go value as encoding/json does for the types a
// record holds (and, through encoding/json itself, any other).
func appendAny(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case string:
		return appendString(dst, x), nil
	case json.Number:
		if x == "" {
			return append(dst, '0'), nil
		}
		if !isNumberLiteral(string(x)) {
			return dst, fmt.Errorf("json: invalid number literal %q", string(x))
		}
		return append(dst, x...), nil
	case float64:
		return appendFloat(dst, x, 64)
	case float32:
		return appendFloat(dst, float64(x), 32)
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case int32:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case uint:
		return strconv.AppendUint(dst, uint64(x), 10), nil
	case map[string]any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sortStrings(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			var err error
			if dst, err = appendAny(dst, x[k]); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case []any:
		if x == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendAny(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}

// isNumberLiteral reports whether s is one whole JSON number literal.
func isNumberLiteral(s string) bool {
	if s == "" {
		return false
	}
	end, ok := scanNumber(unsafe.Slice(unsafe.StringData(s), len(s)), 0) // read only
	return ok && end == len(s)
}

// sortStrings sorts a few strings: insertion sort, no allocation.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Fields is a record taken apart: its top-level fields, each name once
// (the last one written, as in a decoded record), values as written. The
// steps decode a record into Fields once and read, change and encode it
// from there. The zero value is an empty record; Scan reuses its memory.
type Fields struct {
	list []Field
}

// Scan takes data apart as one record. It fails as [DecodeRecord] does,
// with the same errors. The fields view data, which must not change
// while they are used.
func (f *Fields) Scan(data []byte) error {
	var ok bool
	if f.list, ok = scanObject(data, f.list[:0]); ok {
		f.dedupe()
		return nil
	}
	rec, err := DecodeRecord(data)
	if err != nil {
		f.list = f.list[:0]
		return err
	}
	f.list = fieldsFromRecord(rec, f.list[:0])
	return nil
}

// FromRecord makes f hold a decoded record's fields.
func (f *Fields) FromRecord(rec Record) { f.list = fieldsFromRecord(rec, f.list[:0]) }

// dedupe keeps the last of fields with one name, as a decoded map does.
func (f *Fields) dedupe() {
	if len(f.list) > 32 {
		last := make(map[string]int, len(f.list))
		for i, fl := range f.list {
			last[fl.Name] = i
		}
		if len(last) == len(f.list) {
			return
		}
		kept := f.list[:0]
		for i, fl := range f.list {
			if last[fl.Name] == i {
				kept = append(kept, fl)
			}
		}
		f.list = kept
		return
	}
	for i := 1; i < len(f.list); i++ {
		for j := 0; j < i; j++ {
			if f.list[j].Name == f.list[i].Name {
				f.list[j].Value = f.list[i].Value
				f.list = append(f.list[:i], f.list[i+1:]...)
				i--
				break
			}
		}
	}
}

// Len is the number of fields.
func (f *Fields) Len() int { return len(f.list) }

// All is the fields, in no particular order. Read only.
func (f *Fields) All() []Field { return f.list }

// Get returns the value of field name and whether the record has it.
func (f *Fields) Get(name string) (Value, bool) {
	for i := range f.list {
		if f.list[i].Name == name {
			return f.list[i].Value, true
		}
	}
	return Value{}, false
}

// Set sets field name to v.
func (f *Fields) Set(name string, v Value) {
	for i := range f.list {
		if f.list[i].Name == name {
			f.list[i].Value = v
			return
		}
	}
	f.list = append(f.list, Field{Name: name, Value: v})
}

// Delete removes field name.
func (f *Fields) Delete(name string) {
	for i := range f.list {
		if f.list[i].Name == name {
			f.list[i] = f.list[len(f.list)-1]
			f.list = f.list[:len(f.list)-1]
			return
		}
	}
}

// Record is the record as [DecodeRecord] gives it.
func (f *Fields) Record() Record {
	rec := make(Record, len(f.list))
	for _, fl := range f.list {
		rec[fl.Name] = fl.Value.Any()
	}
	return rec
}

// Env is what an expression sees of the record, as [ExprEnv] gives it.
func (f *Fields) Env() map[string]any {
	env := make(map[string]any, len(f.list))
	for _, fl := range f.list {
		env[fl.Name] = fl.Value.exprValue()
	}
	return env
}

// AppendJSON appends the record as [EncodeRecord] writes it: compact, keys
// sorted, <, > and & not escaped. It sorts f's fields.
func (f *Fields) AppendJSON(dst []byte) ([]byte, error) {
	for i := 1; i < len(f.list); i++ {
		for j := i; j > 0 && f.list[j].Name < f.list[j-1].Name; j-- {
			f.list[j], f.list[j-1] = f.list[j-1], f.list[j]
		}
	}
	dst = append(dst, '{')
	for i, fl := range f.list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, fl.Name)
		dst = append(dst, ':')
		var err error
		if dst, err = fl.Value.AppendJSON(dst); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}
