package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
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
		return describe(v.f)
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
	return describe(v.gv)
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

// fieldsFromRecord takes a decoded record apart, for records the scanner
// leaves to DecodeRecord.
func fieldsFromRecord(rec Record, out []Field) []Field {
	for k, v := range rec {
		out = append(out, Field{Name: k, Value: ValueOf(v), plain: plainName(k)})
	}
	return out
}

// AppendJSON appends the value as encoding/json writes it into a clean
// record (compact, object keys sorted, <, > and & not escaped), so that
// a record comes out the same whichever way it went in.
func (v *Value) AppendJSON(dst []byte) ([]byte, error) {
	switch v.rep {
	case repStr:
		return appendString(dst, bytesOf(v.s)), nil
	case repFloat:
		return appendFloat(dst, v.f, 64)
	case repGo:
		return appendAny(dst, v.gv)
	}
	switch v.kind {
	case KindString:
		if !v.esc && (!v.wide || !hasLineSep(v.s)) {
			return append(dst, v.s...), nil // already as encoding/json writes it
		}
		return appendString(dst, unquote(nil, bytesOf(v.s[1:len(v.s)-1]))), nil
	case KindObject, KindArray:
		return appendCanonical(dst, v.s)
	}
	return append(dst, v.s...), nil
}

// hasLineSep reports whether b holds U+2028 or U+2029, which encoding/json
// escapes.
func hasLineSep(b string) bool {
	for {
		i := strings.IndexByte(b, 0xE2)
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
func appendCanonical(dst []byte, raw string) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return dst, err
	}
	return appendAny(dst, v)
}

const hexDigits = "0123456789abcdef"

// plainPrefix is the length of the prefix of s, in eight-byte steps, that
// holds no byte a JSON string must escape and no non-ASCII.
func plainPrefix(s []byte) int {
	i := 0
	for i+8 <= len(s) {
		w := binary.LittleEndian.Uint64(s[i:])
		if hasZero(w^(lsb*'"'))|hasZero(w^(lsb*'\\'))|((w-lsb*0x20)&^w)|w&msb != 0 {
			break
		}
		i += 8
	}
	return i
}

// plainName reports whether a field name is written as it is, in quotes.
func plainName(s string) bool {
	b := bytesOf(s)
	for i := plainPrefix(b); i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string the way encoding/json does
// without HTML escaping: invalid UTF-8 as U+FFFD, U+2028 and U+2029
// escaped.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	i := plainPrefix(s)
	start := 0
	for i < len(s) {
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
		r, size := utf8.DecodeRune(s[i:])
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
		return appendString(dst, bytesOf(x)), nil
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
			dst = appendString(dst, bytesOf(k))
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
	end, ok := scanNumber(bytesOf(s), 0)
	return ok && end == len(s)
}

// sameOrder reports whether the last sorted order fits the fields now.
func (f *Fields) sameOrder() bool {
	if len(f.order) != len(f.list) {
		return false
	}
	start := 0
	for i, k := range f.order {
		if int(k) >= len(f.list) || f.list[k].Name != string(f.names[start:f.ends[i]]) {
			return false
		}
		start = f.ends[i]
	}
	return true
}

// nameLess is a < b, deciding on the first byte inline: most field names
// differ there.
func nameLess(a, b string) bool {
	if a != "" && b != "" && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
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
	// list holds the fields; a deleted one stays, its kind KindMissing
	// (moving fields, which hold pointers, costs more than skipping one).
	list    []Field
	deleted int
	// order is AppendJSON's sorted order of list, and sorted the names in
	// it: records of a dataset mostly come with the same fields in the
	// same order, and then the last order is right again.
	order []uint16
	names []byte // the sorted names, copied: the record's bytes may be reused
	ends  []int  // where each name ends in names
}

// Scan takes data apart as one record. It fails as [DecodeRecord] does,
// with the same errors. The fields view data, which must not change
// while they are used.
func (f *Fields) Scan(data []byte) error {
	f.deleted = 0
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
func (f *Fields) FromRecord(rec Record) { f.list, f.deleted = fieldsFromRecord(rec, f.list[:0]), 0 }

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
	// A bit per (length, last byte) of each name: when no two names share
	// one, no two are equal, and the pairs need no comparing.
	var seen uint64
	clash := false
	for i := range f.list {
		n := f.list[i].Name
		bit := uint64(1) << ((uint(len(n)) * 7) % 64)
		if n != "" {
			bit = uint64(1) << ((uint(len(n))*7 + uint(n[len(n)-1])) % 64)
		}
		if seen&bit != 0 {
			clash = true
			break
		}
		seen |= bit
	}
	if !clash {
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
func (f *Fields) Len() int { return len(f.list) - f.deleted }

// All is the fields, in no particular order. Read only.
func (f *Fields) All() []Field {
	if f.deleted > 0 {
		kept := f.list[:0]
		for _, fl := range f.list {
			if fl.Value.kind != KindMissing {
				kept = append(kept, fl)
			}
		}
		f.list, f.deleted = kept, 0
	}
	return f.list
}

// Get returns the value of field name and whether the record has it.
func (f *Fields) Get(name string) (Value, bool) {
	for i := range f.list {
		if f.list[i].Name == name {
			return f.list[i].Value, f.list[i].Value.kind != KindMissing
		}
	}
	return Value{}, false
}

// Set sets field name to v.
func (f *Fields) Set(name string, v Value) {
	for i := range f.list {
		if fl := &f.list[i]; fl.Name == name {
			if fl.Value.kind == KindMissing {
				f.deleted--
			}
			fl.Value = v
			return
		}
	}
	f.list = append(f.list, Field{Name: name, Value: v, plain: plainName(name)})
}

// Delete removes field name.
func (f *Fields) Delete(name string) {
	for i := range f.list {
		if fl := &f.list[i]; fl.Name == name {
			if fl.Value.kind != KindMissing {
				fl.Value.kind = KindMissing
				f.deleted++
			}
			return
		}
	}
}

// Record is the record as [DecodeRecord] gives it.
func (f *Fields) Record() Record {
	rec := make(Record, f.Len())
	for _, fl := range f.list {
		if fl.Value.kind != KindMissing {
			rec[fl.Name] = fl.Value.Any()
		}
	}
	return rec
}

// Env is what an expression sees of the record, as [ExprEnv] gives it.
func (f *Fields) Env() map[string]any {
	env := make(map[string]any, f.Len())
	for _, fl := range f.list {
		if fl.Value.kind != KindMissing {
			env[fl.Name] = fl.Value.exprValue()
		}
	}
	return env
}

// AppendJSON appends the record as [EncodeRecord] writes it: compact, keys
// sorted, <, > and & not escaped.
func (f *Fields) AppendJSON(dst []byte) ([]byte, error) {
	if len(f.list) > math.MaxUint16 {
		return appendAny(dst, f.Record())
	}
	if !f.sameOrder() {
		// Sort indexes, not fields: a field is large and holds pointers.
		f.order = f.order[:0]
		for i := range f.list {
			f.order = append(f.order, uint16(i))
		}
		for i := 1; i < len(f.order); i++ {
			for j := i; j > 0 && nameLess(f.list[f.order[j]].Name, f.list[f.order[j-1]].Name); j-- {
				f.order[j], f.order[j-1] = f.order[j-1], f.order[j]
			}
		}
		f.names, f.ends = f.names[:0], f.ends[:0]
		for _, k := range f.order {
			f.names = append(f.names, f.list[k].Name...)
			f.ends = append(f.ends, len(f.names))
		}
	}
	dst = append(dst, '{')
	first := true
	for _, k := range f.order {
		fl := &f.list[k]
		if fl.Value.kind == KindMissing {
			continue // deleted
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if fl.plain {
			dst = append(append(append(dst, '"'), fl.Name...), '"')
		} else {
			dst = appendString(dst, bytesOf(fl.Name))
		}
		dst = append(dst, ':')
		var err error
		if dst, err = fl.Value.AppendJSON(dst); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}
