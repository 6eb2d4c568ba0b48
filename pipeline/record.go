package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// Record is one decoded record: a JSON object with numbers kept as
// json.Number, so a number passes through byte for byte and a numeric
// string stays a string.
type Record = map[string]any

// DecodeRecord decodes one record. It fails with [ErrInvalidUTF8],
// [ErrMalformed] or [ErrNotObject], wrapped with what was wrong and where.
func DecodeRecord(data []byte) (Record, error) {
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: invalid byte at offset %d", ErrInvalidUTF8, invalidUTF8At(data))
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	if at := tooDeepAt(trimmed, MaxRecordDepth); at >= 0 {
		return nil, fmt.Errorf("%w: more than %d levels of objects and arrays at offset %d", ErrTooDeep, MaxRecordDepth, at)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, jsonErr(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: unexpected data after the value at offset %d", ErrMalformed, dec.InputOffset())
	}
	rec, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: got %s", ErrNotObject, Kind(v))
	}
	return rec, nil
}

// MaxRecordDepth bounds the nesting of objects and arrays in a record. A
// data record needs a handful of levels; deeper ones are hostile or broken
// and would cost every later step (transform, DuckDB) time and stack.
const MaxRecordDepth = 64

// tooDeepAt is the offset of the first bracket past max levels, or -1. It
// skips strings, so brackets inside them do not count; it runs before the
// JSON decoder, which would otherwise build the whole tree first.
func tooDeepAt(data []byte, max int) int {
	depth, inString, escaped := 0, false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return i
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return -1
}

func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at offset %d", se, se.Offset)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

func invalidUTF8At(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// Kind names the JSON kind of a decoded value, for error messages.
func Kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int64, int:
		return "a number"
	case string:
		return "a string"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// Describe renders a value for an error message: short and unambiguous.
func Describe(v any) string {
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:37] + "..."
		}
		return strconv.Quote(x)
	case json.Number:
		s := x.String()
		if len(s) > 40 {
			s = s[:37] + "..."
		}
		return s
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	return Kind(v)
}

// AsFloat returns v as a float64 when it is a finite JSON number.
func AsFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		return parseFloat(x.String())
	case float64:
		return x, !math.IsNaN(x) && !math.IsInf(x, 0)
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	}
	return 0, false
}

func parseFloat(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// ExprEnv is the variables an expression sees for rec: its top-level
// fields, numbers as float64 (a number too large for float64 as nil).
// Nested values are passed as decoded.
func ExprEnv(rec Record) map[string]any {
	env := make(map[string]any, len(rec))
	for k, v := range rec {
		if n, ok := v.(json.Number); ok {
			if f, ok := parseFloat(n.String()); ok {
				env[k] = f
			} else {
				env[k] = nil
			}
			continue
		}
		env[k] = v
	}
	return env
}

// EncodeRecord writes a record as compact JSON with sorted keys, without
// escaping <, > and & (the output is data, not HTML).
func EncodeRecord(rec Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("encode record: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
