package pipeline

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

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

// sortStrings sorts a few strings: insertion sort, no allocation.
func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
