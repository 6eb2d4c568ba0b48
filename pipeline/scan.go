package pipeline

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// scanObject reads data as one JSON object between JSON white space, in
// one pass and without allocating, and appends its top-level members to
// out: each value as written. It accepts exactly what [DecodeRecord]
// accepts (a UTF-8 JSON object at most MaxRecordDepth deep, nothing after
// it) except records padded with other white space, which it leaves to
// DecodeRecord (ok false), as it does everything it rejects, so that the
// error says what DecodeRecord says.
func scanObject(data []byte, out []Field) (_ []Field, ok bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return out, false
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == '}' {
		return out, skipWS(data, i+1) == len(data)
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return out, false
		}
		j, keyEsc, keyWide, ok := scanString(data, i)
		if !ok {
			return out, false
		}
		key := data[i+1 : j-1]
		i = skipWS(data, j)
		if i >= len(data) || data[i] != ':' {
			return out, false
		}
		i = skipWS(data, i+1)
		kind, j, esc, wide, ok := scanValue(data, i, 1)
		if !ok {
			return out, false
		}
		name, plain := view(key), !keyEsc && !keyWide
		if keyEsc {
			name = string(unquote(nil, key))
		}
		out = append(out, Field{Name: name, Value: Value{kind: kind, s: view(data[i:j]), esc: esc, wide: wide}, plain: plain})
		i = skipWS(data, j)
		if i >= len(data) {
			return out, false
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case '}':
			return out, skipWS(data, i+1) == len(data)
		default:
			return out, false
		}
	}
}

// jsonWS marks JSON's white space: space, tab, line feed, carriage return.
var jsonWS = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

func skipWS(data []byte, i int) int {
	for i < len(data) && jsonWS[data[i]] {
		i++
	}
	return i
}

// plainByte marks the bytes a string holds as they are: printable ASCII
// but the quote and the backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// scanString reads the string starting at data[i] (a quote) and returns
// the index after its closing quote, whether it holds escapes and whether
// it holds non-ASCII. Its bytes must be valid UTF-8, control characters
// escaped.
func scanString(data []byte, i int) (end int, esc, wide, ok bool) {
	j := i + 1
	// Most strings are short plain ASCII: a byte loop finds their end
	// before the search below has started.
	for k := min(j+16, len(data)); j < k && plainByte[data[j]]; j++ {
	}
	if j < len(data) && data[j] == '"' {
		return j + 1, false, false, true
	}
	// Longer ones: find the quote, then check what lies before it eight
	// bytes at a time.
	if q := bytes.IndexByte(data[j:], '"'); q >= 0 {
		k, end := j, j+q
		for k+8 <= end {
			w := binary.LittleEndian.Uint64(data[k:])
			if hasZero(w^(lsb*'\\'))|((w-lsb*0x20)&^w)|w&msb != 0 {
				break
			}
			k += 8
		}
		for k < end && plainByte[data[k]] {
			k++
		}
		if k == end {
			return end + 1, false, false, true
		}
		j = k
	}
	for j < len(data) {
		c := data[j]
		if plainByte[c] {
			j++
			continue
		}
		switch {
		case c == '"':
			return j + 1, esc, wide, true
		case c == '\\':
			esc = true
			if j+1 >= len(data) {
				return 0, false, false, false
			}
			switch data[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(data) || !isHex(data[j+2]) || !isHex(data[j+3]) || !isHex(data[j+4]) || !isHex(data[j+5]) {
					return 0, false, false, false
				}
				j += 6
			default:
				return 0, false, false, false
			}
		case c < 0x20:
			return 0, false, false, false
		default: // c >= 0x80: one rune of UTF-8
			wide = true
			r, size := utf8.DecodeRune(data[j:])
			if r == utf8.RuneError && size == 1 {
				return 0, false, false, false
			}
			j += size
		}
	}
	return 0, false, false, false
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasZero is non-zero when a byte of w is zero (its high bit marks the
// first one).
func hasZero(w uint64) uint64 { return (w - lsb) &^ w & msb }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// scanValue reads the value starting at data[i], inside a container at
// depth (the record itself is depth 1), and returns its kind, the index
// after it, and for a string whether it holds escapes.
func scanValue(data []byte, i, depth int) (kind ValueKind, end int, esc, wide, ok bool) {
	if i >= len(data) {
		return 0, 0, false, false, false
	}
	switch c := data[i]; {
	case c == '"':
		end, esc, wide, ok = scanString(data, i)
		return KindString, end, esc, wide, ok
	case c == '{' || c == '[':
		if depth+1 > MaxRecordDepth {
			return 0, 0, false, false, false
		}
		kind = KindObject
		if c == '[' {
			kind = KindArray
		}
		end, ok = skipComposite(data, i, depth+1)
		return kind, end, false, false, ok
	case c == 't':
		return KindBool, i + 4, false, false, hasAt(data, i, "true")
	case c == 'f':
		return KindBool, i + 5, false, false, hasAt(data, i, "false")
	case c == 'n':
		return KindNull, i + 4, false, false, hasAt(data, i, "null")
	case c == '-' || c >= '0' && c <= '9':
		end, ok = scanNumber(data, i)
		return KindNumber, end, false, false, ok
	}
	return 0, 0, false, false, false
}

func hasAt(data []byte, i int, lit string) bool {
	return len(data)-i >= len(lit) && string(data[i:i+len(lit)]) == lit
}

// skipComposite reads the object or array starting at data[i], itself at
// depth, and returns the index after it.
func skipComposite(data []byte, i, depth int) (int, bool) {
	object := data[i] == '{'
	closing := byte(']')
	if object {
		closing = '}'
	}
	i = skipWS(data, i+1)
	if i < len(data) && data[i] == closing {
		return i + 1, true
	}
	for {
		if object {
			if i >= len(data) || data[i] != '"' {
				return 0, false
			}
			j, _, _, ok := scanString(data, i)
			if !ok {
				return 0, false
			}
			i = skipWS(data, j)
			if i >= len(data) || data[i] != ':' {
				return 0, false
			}
			i = skipWS(data, i+1)
		}
		_, j, _, _, ok := scanValue(data, i, depth)
		if !ok {
			return 0, false
		}
		i = skipWS(data, j)
		if i >= len(data) {
			return 0, false
		}
		switch data[i] {
		case ',':
			i = skipWS(data, i+1)
		case closing:
			return i + 1, true
		default:
			return 0, false
		}
	}
}

// scanNumber reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && data[i] >= '1' && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return 0, false
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}

func digits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// PrefixField finds the top-level field name in the start of a record
// that may be cut anywhere (a line too long to read whole): the value of
// its last occurrence that ends before the cut, as in a decoded record.
// The value views data.
func PrefixField(data []byte, name string) (Value, bool) {
	i := skipWS(data, 0)
	if i >= len(data) || data[i] != '{' {
		return Value{}, false
	}
	i = skipWS(data, i+1)
	var (
		found Value
		ok    bool
	)
	for i < len(data) && data[i] == '"' {
		j, keyEsc, _, good := scanString(data, i)
		if !good {
			break
		}
		key := data[i+1 : j-1]
		i = skipWS(data, j)
		if i >= len(data) || data[i] != ':' {
			break
		}
		i = skipWS(data, i+1)
		kind, end, esc, wide, good := scanValue(data, i, 1)
		if !good || end >= len(data) { // at the cut: maybe not whole
			break
		}
		k := view(key)
		if keyEsc {
			k = string(unquote(nil, key))
		}
		if k == name {
			found, ok = Value{kind: kind, s: view(data[i:end]), esc: esc, wide: wide}, true
		}
		i = skipWS(data, end)
		if i >= len(data) || data[i] != ',' {
			break
		}
		i = skipWS(data, i+1)
	}
	return found, ok
}
