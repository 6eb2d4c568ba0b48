package aggregate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// The record intake: one pass over a clean record's JSON that validates
// it, extracts its key and appends its schema columns as canonical JSON,
// values DuckDB's read_json(format='newline_delimited', columns={...})
// reads into the schema's types exactly as the appender path stored the
// converters' values (convert.go): strings as strings, numbers as the
// float or integer they were parsed to, DECIMALs as strings with exactly
// scale digits, times as UTC text with six fractional digits.
//
// Values read_json is given per column type:
//
//	VARCHAR, TEXT, STRING, CHAR, BPCHAR  JSON string: a string's content, else the value's literal text
//	JSON                                 the same JSON string; read as JSON it is a JSON string value,
//	                                     as the appender stored it (it json.Marshal-s Go strings)
//	DOUBLE, REAL                         JSON number; "NaN", "Infinity", "-Infinity" as strings; -0 as -0.0
//	integers                             JSON integer
//	BOOLEAN                              true or false
//	TIMESTAMPTZ                          "2026-10-01T10:00:00.000000+00:00"
//	TIMESTAMP, DATETIME, TIMESTAMP_US    "2026-10-01T10:00:00.000000" (the UTC wall clock)
//	DATE                                 "2026-10-01"
//	DECIMAL(p,s), NUMERIC                "12.50": exactly s fractional digits, so DuckDB does not round

// canonMaxDepth is encoding/json's nesting limit, so the intake accepts
// exactly what json.Unmarshal did.
const canonMaxDepth = 10000

// canonKeepBuffers is how many bytes of scratch an encoder keeps between
// records.
const canonKeepBuffers = 64 << 10

// canonOrderCap bounds the member positions whose column the encoder
// predicts from the previous record; later members use the name index.
const canonOrderCap = 64

// errCanonUnsupportedType has the text of convert.go's errUnsupportedType.
var errCanonUnsupportedType = errors.New("unsupported column type")

// canonTimeLayouts are convert.go's timeLayouts: the string forms of a
// timestamp, tried in order.
var canonTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

type canonKind uint8

const (
	canonString canonKind = iota // VARCHAR and friends, and JSON
	canonDouble
	canonReal
	canonInt
	canonUint
	canonBool
	canonTimestampTZ
	canonTimestamp
	canonDate
	canonDecimal
)

// Flags of a scanned value.
const (
	canonIsString  uint8 = 1 << iota // a JSON string token
	canonHasEscape                   // a string with a backslash escape
	canonHasHigh                     // bytes >= 0x80 somewhere in the value
	canonIsNull                      // the literal null
	canonIsNumber                    // a JSON number token
	canonHasExp                      // a number with an exponent
	canonIsPresent                   // the member was in the record
)

type canonCol struct {
	name   string
	typ    string // as configured: error texts quote it
	prefix []byte // ,"name":
	kind   canonKind
	bits   int   // integer width
	width  uint8 // DECIMAL
	scale  uint8
	limit  *big.Int // 10^width, for the exact DECIMAL path
	mul    *big.Rat // 10^scale
}

// canonSpan is the last occurrence of a member in the record.
type canonSpan struct {
	start, end int
	flags      uint8
}

// canonEncoder turns clean records into canonical NDJSON fields. It keeps
// scratch state between calls: one goroutine at a time may use it.
type canonEncoder struct {
	cols    []canonCol
	keyName string
	keySlot int
	names   [][]byte         // per slot: the member name matched
	plain   []bool           // per slot: the name is written as is in JSON
	index   map[string]int32 // member name -> slot
	// order[m] is the slot the m-th member of the previous record had
	// (-1: none), so records of one shape match each name with one compare.
	order   [canonOrderCap]int32
	slots   []canonSpan
	stack   [(canonMaxDepth + 63) / 64]uint64 // 1: object, 0: array, per depth
	nameBuf []byte                            // an unescaped member name
	keyBuf  []byte                            // an unescaped key; returned to the caller
	scratch []byte                            // an unescaped value being converted
}

// canonNewEncoder builds the encoder of a dataset's records: its schema
// and its key field. A type convert.go's converterFor rejects fails here
// with the same text.
func canonNewEncoder(schema []Column, key string) (*canonEncoder, error) {
	e := &canonEncoder{
		keyName: key,
		keySlot: -1,
		index:   make(map[string]int32, len(schema)+1),
		nameBuf: make([]byte, 0, 64),
		keyBuf:  make([]byte, 0, 64),
		scratch: make([]byte, 0, 256),
	}
	for i := range e.order {
		e.order[i] = -1
	}
	for _, c := range schema {
		if !utf8.ValidString(c.Name) {
			return nil, fmt.Errorf("column %q: name is not valid UTF-8", c.Name)
		}
		if _, dup := e.index[c.Name]; dup {
			return nil, fmt.Errorf("column %s twice", c.Name)
		}
		col, err := canonColumn(c)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		e.index[c.Name] = int32(len(e.cols))
		e.names = append(e.names, []byte(c.Name))
		e.plain = append(e.plain, canonIsPlain(c.Name))
		e.cols = append(e.cols, col)
	}
	if s, ok := e.index[key]; ok {
		e.keySlot = int(s)
	} else {
		e.keySlot = len(e.names)
		e.index[key] = int32(e.keySlot)
		e.names = append(e.names, []byte(key))
		e.plain = append(e.plain, canonIsPlain(key))
	}
	e.slots = make([]canonSpan, len(e.names))
	return e, nil
}

// canonBaseType is convert.go's baseType: the name without parameters,
// upper case.
func canonBaseType(t string) string {
	t = strings.ToUpper(strings.TrimSpace(t))
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	return t
}

func canonColumn(c Column) (canonCol, error) {
	col := canonCol{name: c.Name, typ: c.Type}
	col.prefix = append(canonAppendString([]byte{','}, []byte(c.Name)), ':')
	switch canonBaseType(c.Type) {
	case "VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "JSON":
		col.kind = canonString
	case "DOUBLE", "FLOAT8":
		col.kind = canonDouble
	case "REAL", "FLOAT", "FLOAT4":
		col.kind = canonReal
	case "BIGINT", "INT8", "LONG":
		col.kind, col.bits = canonInt, 64
	case "INTEGER", "INT4", "INT", "SIGNED":
		col.kind, col.bits = canonInt, 32
	case "SMALLINT", "INT2", "SHORT":
		col.kind, col.bits = canonInt, 16
	case "TINYINT", "INT1":
		col.kind, col.bits = canonInt, 8
	case "UBIGINT":
		col.kind, col.bits = canonUint, 64
	case "UINTEGER":
		col.kind, col.bits = canonUint, 32
	case "USMALLINT":
		col.kind, col.bits = canonUint, 16
	case "UTINYINT":
		col.kind, col.bits = canonUint, 8
	case "BOOLEAN", "BOOL", "LOGICAL":
		col.kind = canonBool
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE":
		col.kind = canonTimestampTZ
	case "TIMESTAMP", "DATETIME", "TIMESTAMP_US":
		col.kind = canonTimestamp
	case "DATE":
		col.kind = canonDate
	case "DECIMAL", "NUMERIC":
		w, s, err := canonDecimalParams(c.Type)
		if err != nil {
			return col, err
		}
		col.kind, col.width, col.scale = canonDecimal, w, s
		col.limit = new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(w)), nil)
		col.mul = new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(s)), nil))
	default:
		return col, fmt.Errorf("%w %q (use VARCHAR, DOUBLE, REAL, BIGINT, INTEGER, SMALLINT, TINYINT, unsigned ints, BOOLEAN, TIMESTAMPTZ, TIMESTAMP, DATE, DECIMAL(p,s) or JSON)", errCanonUnsupportedType, c.Type)
	}
	return col, nil
}

// canonDecimalParams is convert.go's decimalParams.
func canonDecimalParams(typ string) (width, scale uint8, err error) {
	width, scale = 18, 3 // DuckDB's default DECIMAL
	if i := strings.IndexByte(typ, '('); i >= 0 {
		var w, s int
		if _, err := fmt.Sscanf(strings.ReplaceAll(typ[i:], " ", ""), "(%d,%d)", &w, &s); err != nil {
			return 0, 0, fmt.Errorf("%w %q: want DECIMAL(width,scale)", errCanonUnsupportedType, typ)
		}
		if w < 1 || w > 38 || s < 0 || s > w {
			return 0, 0, fmt.Errorf("%w %q: width 1..38, scale 0..width", errCanonUnsupportedType, typ)
		}
		width, scale = uint8(w), uint8(s)
	}
	return width, scale, nil
}

// Encode checks that rec is one JSON object, appends its schema columns
// (in schema order, absent and null ones left out) as `,"name":value` and
// then the closing brace to dst, and returns the record's key text. The
// caller has written the line's opening brace and at least one field to
// dst, with no trailing comma.
//
// key aliases rec or the encoder's scratch: it is valid until the next
// call. On error out is dst as given and the error is the record's
// dead-letter reason, in the texts of the appender path.
func (e *canonEncoder) Encode(dst, rec []byte) (out, key []byte, err error) {
	if cap(e.scratch)+cap(e.keyBuf)+cap(e.nameBuf) > canonKeepBuffers {
		// After a huge record: do not hold its size for the stream's life.
		e.scratch, e.keyBuf, e.nameBuf = nil, nil, nil
	}
	if err := e.scan(rec); err != nil {
		return dst, nil, err
	}
	key, err = e.key(rec)
	if err != nil {
		return dst, nil, err
	}
	n := len(dst)
	for i := range e.cols {
		sp := e.slots[i]
		if sp.flags&canonIsPresent == 0 || sp.flags&canonIsNull != 0 {
			continue
		}
		c := &e.cols[i]
		if dst, err = e.appendValue(dst, c, rec[sp.start:sp.end], sp.flags); err != nil {
			return dst[:n], nil, fmt.Errorf("aggregate: field %s (%s): %w", c.name, c.typ, err)
		}
	}
	return append(dst, '}'), key, nil
}

func (e *canonEncoder) key(rec []byte) ([]byte, error) {
	sp := e.slots[e.keySlot]
	if sp.flags&canonIsPresent == 0 || sp.flags&canonIsNull != 0 {
		return nil, fmt.Errorf("aggregate: record has no key field %q", e.keyName)
	}
	raw := rec[sp.start:sp.end]
	var k []byte
	switch {
	case sp.flags&canonIsString == 0:
		k = raw
	case sp.flags&canonHasEscape == 0:
		k = raw[1 : len(raw)-1]
	default:
		e.keyBuf = canonUnquote(e.keyBuf[:0], raw)
		k = e.keyBuf
	}
	if len(k) == 0 {
		return nil, fmt.Errorf("aggregate: record has an empty key field %q", e.keyName)
	}
	// The key is stored as text, which DuckDB holds only as UTF-8.
	if sp.flags&canonHasHigh != 0 && !utf8.Valid(raw) {
		return nil, fmt.Errorf("aggregate: record has a key field %q that is not valid UTF-8", e.keyName)
	}
	return k, nil
}

// content is convert.go's fieldString: a string's unescaped content, or
// the literal of anything else. Unescaped content lives in e.scratch.
func (e *canonEncoder) content(raw []byte, flags uint8) (s []byte, quoted bool) {
	if flags&canonIsString == 0 {
		return raw, false
	}
	if flags&canonHasEscape == 0 {
		return raw[1 : len(raw)-1], true
	}
	e.scratch = canonUnquote(e.scratch[:0], raw)
	return e.scratch, true
}

func (e *canonEncoder) appendValue(dst []byte, c *canonCol, raw []byte, flags uint8) ([]byte, error) {
	switch c.kind {
	case canonString:
		// DuckDB stores text only as UTF-8; the appender path passed the
		// invalid bytes on, which broke the batch or stored a value that
		// cannot be read back.
		if flags&canonHasHigh != 0 && !utf8.Valid(raw) {
			return dst, fmt.Errorf("invalid UTF-8: %s", strconv.Quote(canonTruncate(raw)))
		}
		dst = append(dst, c.prefix...)
		if flags&canonIsString != 0 {
			if flags&canonHasEscape == 0 {
				return append(dst, raw...), nil
			}
			s, _ := e.content(raw, flags)
			return canonAppendString(dst, s), nil
		}
		// Read as a string, a number keeps its text (read_json would
		// print 12.50 as 12.5) and an object its spacing.
		return canonAppendString(dst, raw), nil

	case canonDouble:
		if flags&canonIsNumber != 0 && len(raw) <= 32 {
			// read_json reads a JSON number as strconv does (both round
			// correctly), so the token is copied. One without an exponent
			// is below 1e32: finite.
			if flags&canonHasExp != 0 {
				f, err := strconv.ParseFloat(canonStr(raw), 64)
				if err != nil || math.IsInf(f, 0) {
					return dst, fmt.Errorf("not a number: %s", canonTruncate(raw))
				}
			}
			dst = append(dst, c.prefix...)
			if string(raw) == "-0" {
				return append(dst, "-0.0"...), nil // read_json reads -0 as the integer 0
			}
			return append(dst, raw...), nil
		}
		f, err := e.float(raw, flags)
		if err != nil {
			return dst, err
		}
		return canonAppendFloat(append(dst, c.prefix...), f), nil

	case canonReal:
		f, err := e.float(raw, flags)
		if err != nil {
			return dst, err
		}
		// As the appender path: the double rounded to float32, which
		// overflows to an infinity. Written exactly as a double, it reads
		// back as that float32.
		return canonAppendFloat(append(dst, c.prefix...), float64(float32(f))), nil

	case canonInt:
		s, _ := e.content(raw, flags)
		s = bytes.TrimSpace(s)
		v, digits := canonParseDigits(s, c.bits)
		if digits != canonDigitsOK {
			err := strconv.ErrSyntax // ParseInt fails: skip making its error
			if digits == canonDigitsUnsure {
				v, err = strconv.ParseInt(canonStr(s), 10, c.bits)
			}
			if err != nil {
				// 3.0 and 1e3 are integers too.
				f, ferr := strconv.ParseFloat(canonStr(s), 64)
				if ferr != nil || f != math.Trunc(f) || f < -math.Pow(2, float64(c.bits-1)) || f >= math.Pow(2, float64(c.bits-1)) {
					return dst, fmt.Errorf("not a %d-bit integer: %s", c.bits, canonTruncate(raw))
				}
				v = int64(f)
			}
		}
		return strconv.AppendInt(append(dst, c.prefix...), v, 10), nil

	case canonUint:
		s, _ := e.content(raw, flags)
		v, err := strconv.ParseUint(canonStr(bytes.TrimSpace(s)), 10, c.bits)
		if err != nil {
			return dst, fmt.Errorf("not an unsigned %d-bit integer: %s", c.bits, canonTruncate(raw))
		}
		return strconv.AppendUint(append(dst, c.prefix...), v, 10), nil

	case canonBool:
		s, _ := e.content(raw, flags)
		v, ok := canonParseBool(bytes.TrimSpace(s))
		if !ok {
			return dst, fmt.Errorf("not a boolean: %s", canonTruncate(raw))
		}
		dst = append(dst, c.prefix...)
		if v {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil

	case canonTimestampTZ, canonTimestamp:
		if flags&(canonIsString|canonHasEscape) == canonIsString {
			// The common case, a UTC time with a clock, is its own digits:
			// the date and clock, then six digits of the fraction.
			s := raw[1 : len(raw)-1]
			if t, ok := canonParseTime(s); ok && t.off == 0 && len(s) >= len("2006-01-02T15:04:05") {
				dst = append(append(dst, c.prefix...), '"')
				dst = append(dst, s[:19]...)
				dst[len(dst)-9] = 'T' // of a space-separated layout
				dst = append(dst, '.')
				n := 0 // fraction digits: truncated to microseconds
				if len(s) > 20 && s[19] == '.' {
					for _, d := range s[20:] {
						if n == 6 || d < '0' || d > '9' {
							break
						}
						dst = append(dst, d)
						n++
					}
				}
				dst = append(dst, "000000"[n:]...)
				if c.kind == canonTimestampTZ {
					dst = append(dst, "+00:00"...)
				}
				return append(dst, '"'), nil
			}
		}
		sec, usec, err := e.time(raw, flags)
		if err != nil {
			return dst, err
		}
		if sec < canonMinSeconds || sec > canonMaxSeconds {
			// The appender refused these (its years -290307..294246) and
			// failed the batch; here the record is rejected instead.
			return dst, fmt.Errorf("not a timestamp: %s", canonTruncate(raw))
		}
		dst = append(append(dst, c.prefix...), '"')
		dst = canonAppendTime(dst, sec, usec)
		if c.kind == canonTimestampTZ {
			dst = append(dst, "+00:00"...)
		}
		return append(dst, '"'), nil

	case canonDate:
		sec, _, err := e.time(raw, flags)
		if err != nil {
			return dst, fmt.Errorf("not a date: %s", canonTruncate(raw))
		}
		days := canonFloorDiv(sec, 86400)
		if days < -canonMaxDays || days > canonMaxDays {
			// Beyond DuckDB's finite dates the appender stored infinity or
			// a wrapped day number.
			return dst, fmt.Errorf("not a date: %s", canonTruncate(raw))
		}
		dst = append(append(dst, c.prefix...), '"')
		dst = canonAppendDate(dst, days)
		return append(dst, '"'), nil

	case canonDecimal:
		s, _ := e.content(raw, flags)
		dst = append(dst, c.prefix...)
		return canonAppendDecimal(dst, bytes.TrimSpace(s), raw, c)
	}
	panic("canon: unknown kind")
}

// float is convert.go's toFloat64.
func (e *canonEncoder) float(raw []byte, flags uint8) (float64, error) {
	s, _ := e.content(raw, flags)
	f, err := strconv.ParseFloat(canonStr(bytes.TrimSpace(s)), 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a number: %s", canonTruncate(raw))
	}
	return f, nil
}

// time is convert.go's toTime, as Unix seconds and the microseconds of
// that second, rounded down as time.Time.UnixMicro does. An epoch number
// of milliseconds beyond int64 comes back as a second past every limit.
func (e *canonEncoder) time(raw []byte, flags uint8) (sec, usec int64, err error) {
	s, quoted := e.content(raw, flags)
	if !quoted {
		// Epoch seconds (or milliseconds when too large for seconds).
		f, err := strconv.ParseFloat(canonStr(s), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("not a timestamp: %s", canonTruncate(s))
		}
		if math.Abs(f) >= 1e11 {
			if f >= 0x1p63 || f < -0x1p63 {
				// int64(f) is implementation-defined here (amd64: the
				// minimum int64); the appender path stored no sane value.
				return math.MaxInt64, 0, nil
			}
			ms := int64(f)
			sec := canonFloorDiv(ms, 1000)
			return sec, (ms - sec*1000) * 1000, nil
		}
		whole, frac := math.Modf(f)
		sec, nsec := int64(whole), int64(frac*1e9)
		if nsec < 0 { // as time.Unix normalizes
			nsec += 1e9
			sec--
		}
		return sec, nsec / 1e3, nil
	}
	if t, ok := canonParseTime(s); ok {
		sec := canonDaysFromCivil(int64(t.year), t.month, t.day)*86400 + int64(t.hour*3600+t.minute*60+t.second-t.off)
		return sec, int64(t.nsec / 1e3), nil
	}
	for _, layout := range canonTimeLayouts {
		if t, err := time.Parse(layout, canonStr(s)); err == nil {
			return t.Unix(), int64(t.Nanosecond()) / 1e3, nil
		}
	}
	return 0, 0, fmt.Errorf("not a timestamp: %s", strconv.Quote(canonTruncate(s)))
}

// The seconds the appender took for timestamps (years -290307..294246;
// DuckDB's own range is a little wider).
var (
	canonMinSeconds = canonDaysFromCivil(-290307, 1, 1) * 86400
	canonMaxSeconds = canonDaysFromCivil(294247, 1, 1)*86400 - 1
)

// canonMaxDays bounds DuckDB's finite dates: ±2147483647 days are its
// infinities.
const canonMaxDays = 2147483646

// scan reads rec as one JSON object and notes in e.slots where each known
// member's last occurrence is. It accepts what json.Unmarshal into a map
// accepts, plus a top-level null (which json.Unmarshal also let through:
// the record then has no key).
func (e *canonEncoder) scan(rec []byte) error {
	clear(e.slots)
	n := len(rec)
	i := canonSkipSpace(rec, 0)
	if i >= n {
		return canonSyntaxError(rec, i)
	}
	if rec[i] != '{' {
		if bytes.HasPrefix(rec[i:], []byte("null")) && canonSkipSpace(rec, i+4) == n {
			return nil
		}
		if j, _, err := e.skipValue(rec, i, 1); err != nil {
			return err
		} else if j = canonSkipSpace(rec, j); j < n {
			return canonSyntaxError(rec, j)
		}
		return errors.New("aggregate: record is not a JSON object")
	}
	i = canonSkipSpace(rec, i+1)
	if i < n && rec[i] == '}' {
		i++
	} else {
		for m := 0; ; m++ {
			if i >= n || rec[i] != '"' {
				return canonSyntaxError(rec, i)
			}
			slot, j := e.predicted(rec, i, m)
			if j == 0 {
				kflags, end, err := canonScanString(rec, i)
				if err != nil {
					return err
				}
				slot, j = e.lookup(m, rec[i+1:end-1], kflags), end
			}
			i = canonSkipSpace(rec, j)
			if i >= n || rec[i] != ':' {
				return canonSyntaxError(rec, i)
			}
			i = canonSkipSpace(rec, i+1)
			vs := i
			j, vflags, err := e.skipValue(rec, i, 2)
			if err != nil {
				return err
			}
			if slot >= 0 {
				e.slots[slot] = canonSpan{start: vs, end: j, flags: vflags | canonIsPresent}
			}
			i = canonSkipSpace(rec, j)
			if i < n && rec[i] == ',' {
				i = canonSkipSpace(rec, i+1)
				continue
			}
			if i < n && rec[i] == '}' {
				i++
				break
			}
			return canonSyntaxError(rec, i)
		}
	}
	if i = canonSkipSpace(rec, i); i < n {
		return canonSyntaxError(rec, i)
	}
	return nil
}

// predicted matches the name token at rec[i] against the name the m-th
// member had in the previous record, if that is plain ASCII (so equal
// bytes are the whole, valid token). It returns the slot and the token's
// end, or 0 for the end when the bytes differ.
func (e *canonEncoder) predicted(rec []byte, i, m int) (int, int) {
	if m >= canonOrderCap {
		return -1, 0
	}
	s := e.order[m]
	if s < 0 || !e.plain[s] {
		return -1, 0
	}
	name := e.names[s]
	end := i + 1 + len(name)
	if end >= len(rec) || rec[end] != '"' || string(rec[i+1:end]) != string(name) {
		return -1, 0
	}
	return int(s), end + 1
}

// canonIsPlain says whether name is printable ASCII without a quote or a
// backslash.
func canonIsPlain(name string) bool {
	for i := 0; i < len(name); i++ {
		if !canonPlain[name[i]] {
			return false
		}
	}
	return true
}

// lookup finds the slot of the m-th member's name, -1 for none.
func (e *canonEncoder) lookup(m int, name []byte, kflags uint8) int {
	if kflags&(canonHasEscape|canonHasHigh) != 0 && (kflags&canonHasEscape != 0 || !utf8.Valid(name)) {
		// json.Unmarshal unescapes names and replaces invalid UTF-8.
		e.nameBuf = canonUnquoteContent(e.nameBuf[:0], name)
		name = e.nameBuf
	}
	if m < canonOrderCap {
		if s := e.order[m]; s >= 0 && string(e.names[s]) == string(name) {
			return int(s)
		}
	}
	s, ok := e.index[string(name)]
	if !ok {
		s = -1
	}
	if m < canonOrderCap {
		e.order[m] = s
	}
	return int(s)
}

// skipValue scans the JSON value at rec[i], which is at nesting depth
// depth when it is an object or array, and returns its end and flags.
func (e *canonEncoder) skipValue(rec []byte, i, depth int) (int, uint8, error) {
	n := len(rec)
	if i >= n {
		return i, 0, canonSyntaxError(rec, i)
	}
	switch c := rec[i]; {
	case c == '"':
		f, j, err := canonScanString(rec, i)
		return j, f, err
	case c == '{' || c == '[':
		return e.skipContainer(rec, i, depth)
	case c == '-' || c >= '0' && c <= '9':
		j, exp, err := canonScanNumber(rec, i)
		if exp {
			return j, canonIsNumber | canonHasExp, err
		}
		return j, canonIsNumber, err
	case c == 't':
		return canonLiteral(rec, i, "true", 0)
	case c == 'f':
		return canonLiteral(rec, i, "false", 0)
	case c == 'n':
		return canonLiteral(rec, i, "null", canonIsNull)
	}
	return i, 0, canonSyntaxError(rec, i)
}

func canonLiteral(rec []byte, i int, lit string, flags uint8) (int, uint8, error) {
	if len(rec)-i >= len(lit) && string(rec[i:i+len(lit)]) == lit {
		return i + len(lit), flags, nil
	}
	for j := 0; j < len(lit); j++ {
		if i+j >= len(rec) || rec[i+j] != lit[j] {
			return i + j, 0, canonSyntaxError(rec, i+j)
		}
	}
	return i, 0, canonSyntaxError(rec, i) // unreachable
}

// skipContainer scans the object or array at rec[i] without recursion;
// e.stack holds the kind of each open level.
func (e *canonEncoder) skipContainer(rec []byte, i, base int) (int, uint8, error) {
	n := len(rec)
	var flags uint8
	depth := base - 1 // levels open, counting the enclosing ones
	for {
		// rec[i] starts a value.
		var c byte
		if i < n {
			c = rec[i]
		}
		switch {
		case c == '{' || c == '[':
			depth++
			if depth > canonMaxDepth {
				return i, 0, fmt.Errorf("aggregate: record is not a JSON object: exceeded max depth at offset %d", i)
			}
			obj := c == '{'
			if obj {
				e.stack[depth>>6] |= 1 << (depth & 63)
			} else {
				e.stack[depth>>6] &^= 1 << (depth & 63)
			}
			i = canonSkipSpace(rec, i+1)
			if i < n && (obj && rec[i] == '}' || !obj && rec[i] == ']') {
				i++
				depth--
				break // to the end of the value
			}
			if obj {
				var err error
				if i, err = canonObjectKey(rec, i, &flags); err != nil {
					return i, 0, err
				}
			}
			continue
		case c == '"':
			f, j, err := canonScanString(rec, i)
			if err != nil {
				return j, 0, err
			}
			flags |= f & canonHasHigh
			i = j
		case c == '-' || c >= '0' && c <= '9':
			j, _, err := canonScanNumber(rec, i)
			if err != nil {
				return j, 0, err
			}
			i = j
		case c == 't' || c == 'f' || c == 'n':
			lit := "null"
			if c == 't' {
				lit = "true"
			} else if c == 'f' {
				lit = "false"
			}
			j, _, err := canonLiteral(rec, i, lit, 0)
			if err != nil {
				return j, 0, err
			}
			i = j
		default:
			return i, 0, canonSyntaxError(rec, i)
		}
		// After a value: close levels or move to the next element.
		for {
			if depth < base {
				return i, flags, nil
			}
			i = canonSkipSpace(rec, i)
			if i >= n {
				return i, 0, canonSyntaxError(rec, i)
			}
			obj := e.stack[depth>>6]&(1<<(depth&63)) != 0
			if rec[i] == ',' {
				i = canonSkipSpace(rec, i+1)
				if obj {
					var err error
					if i, err = canonObjectKey(rec, i, &flags); err != nil {
						return i, 0, err
					}
				}
				break
			}
			if obj && rec[i] == '}' || !obj && rec[i] == ']' {
				i++
				depth--
				continue
			}
			return i, 0, canonSyntaxError(rec, i)
		}
	}
}

// canonObjectKey scans `"name" :` and the space after it.
func canonObjectKey(rec []byte, i int, flags *uint8) (int, error) {
	if i >= len(rec) || rec[i] != '"' {
		return i, canonSyntaxError(rec, i)
	}
	f, j, err := canonScanString(rec, i)
	if err != nil {
		return j, err
	}
	*flags |= f & canonHasHigh
	j = canonSkipSpace(rec, j)
	if j >= len(rec) || rec[j] != ':' {
		return j, canonSyntaxError(rec, j)
	}
	return canonSkipSpace(rec, j+1), nil
}

// canonPlain marks the string bytes that need no attention: printable
// ASCII other than the quote and the backslash.
var canonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const (
	canonLows  = 0x0101010101010101
	canonHighs = 0x8080808080808080
)

// canonScanString scans the string token at rec[i] (a quote) and returns
// its flags and end. Like encoding/json it rejects control characters and
// bad escapes but not invalid UTF-8, which only matters where the string
// is copied out.
func canonScanString(rec []byte, i int) (uint8, int, error) {
	flags := canonIsString
	n := len(rec)
	i++
	for {
		// Eight bytes at a time: the lowest flagged byte is the first
		// quote, backslash, control or non-ASCII byte (borrows only flag
		// bytes above it).
		for i+8 <= n {
			w := binary.LittleEndian.Uint64(rec[i:])
			q := w ^ ('"' * canonLows)
			b := w ^ ('\\' * canonLows)
			special := ((q-canonLows)&^q | (b-canonLows)&^b | (w - 0x20*canonLows) | w) & canonHighs
			if special != 0 {
				i += bits.TrailingZeros64(special) >> 3
				break
			}
			i += 8
		}
		if i+8 > n {
			for i < n && canonPlain[rec[i]] {
				i++
			}
		}
		if i >= n {
			return flags, i, canonSyntaxError(rec, i)
		}
		switch c := rec[i]; {
		case c == '"':
			return flags, i + 1, nil
		case c == '\\':
			flags |= canonHasEscape
			if i+1 >= n {
				return flags, i + 1, canonSyntaxError(rec, i+1)
			}
			switch rec[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for k := i + 2; k < i+6; k++ {
					if k >= n || canonUnhex(rec[k]) < 0 {
						return flags, k, canonSyntaxError(rec, k)
					}
				}
				i += 6
			default:
				return flags, i + 1, canonSyntaxError(rec, i+1)
			}
		case c < 0x20:
			return flags, i, canonSyntaxError(rec, i)
		default: // >= 0x80
			flags |= canonHasHigh
			i++
		}
	}
}

// canonScanNumber scans a JSON number and says whether it has an
// exponent; the caller checks what follows.
func canonScanNumber(rec []byte, i int) (end int, exp bool, err error) {
	n := len(rec)
	if rec[i] == '-' {
		i++
	}
	switch {
	case i < n && rec[i] == '0':
		i++
	case i < n && rec[i] >= '1' && rec[i] <= '9':
		for i++; i < n && rec[i] >= '0' && rec[i] <= '9'; i++ {
		}
	default:
		return i, false, canonSyntaxError(rec, i)
	}
	if i < n && rec[i] == '.' {
		i++
		if i >= n || rec[i] < '0' || rec[i] > '9' {
			return i, false, canonSyntaxError(rec, i)
		}
		for ; i < n && rec[i] >= '0' && rec[i] <= '9'; i++ {
		}
	}
	if i < n && (rec[i] == 'e' || rec[i] == 'E') {
		i++
		if i < n && (rec[i] == '+' || rec[i] == '-') {
			i++
		}
		if i >= n || rec[i] < '0' || rec[i] > '9' {
			return i, true, canonSyntaxError(rec, i)
		}
		for ; i < n && rec[i] >= '0' && rec[i] <= '9'; i++ {
		}
		return i, true, nil
	}
	return i, false, nil
}

// canonSkipSpace skips JSON whitespace; the common case, none, inlines.
func canonSkipSpace(rec []byte, i int) int {
	if i < len(rec) && rec[i] > ' ' {
		return i
	}
	return canonSkipSpaceSlow(rec, i)
}

func canonSkipSpaceSlow(rec []byte, i int) int {
	for i < len(rec) {
		switch rec[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

func canonSyntaxError(rec []byte, i int) error {
	if i >= len(rec) {
		return errors.New("aggregate: record is not a JSON object: unexpected end of JSON input")
	}
	return fmt.Errorf("aggregate: record is not a JSON object: invalid character %s at offset %d", strconv.QuoteRune(rune(rec[i])), i)
}

func canonUnhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// canonUnquote appends the content of the scanned string token tok as
// json.Unmarshal decodes it into a Go string.
func canonUnquote(dst, tok []byte) []byte {
	return canonUnquoteContent(dst, tok[1:len(tok)-1])
}

// canonUnquoteContent decodes a string's content (valid escapes, no
// quotes) as encoding/json's unquote does: invalid UTF-8 and unpaired
// surrogates become U+FFFD.
func canonUnquoteContent(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			switch s[r+1] {
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
				rr := canonU4(s[r:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, canonU4(s[r:])); dec != utf8.RuneError {
							r += 6
							dst = utf8.AppendRune(dst, dec)
							continue
						}
					}
					rr = utf8.RuneError
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // " \ /
				dst = append(dst, s[r+1])
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst
}

// canonU4 decodes the \uXXXX at s (validated by the scan).
func canonU4(s []byte) rune {
	var r rune
	for _, c := range s[2:6] {
		r = r<<4 | rune(canonUnhex(c))
	}
	return r
}

const canonHex = "0123456789abcdef"

// canonAppendString appends s (valid UTF-8) as a JSON string, escaping
// only what JSON requires.
func canonAppendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', canonHex[c>>4], canonHex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// canonAppendFloat writes f so that read_json reads back exactly f: the
// shortest digits that round-trip, with -0 as -0.0 (the integer -0 reads
// as 0) and NaN and the infinities as the strings DuckDB casts.
func canonAppendFloat(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	case f == 0 && math.Signbit(f):
		return append(dst, "-0.0"...)
	}
	// Plain notation in encoding/json's range, exponents outside it.
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		if n := len(dst); dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1] // e-07 as e-7
			dst = dst[:n-1]
		}
		return dst
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}

const (
	canonDigitsOK     = iota
	canonDigitsNot    // not [+-]digits: strconv.ParseInt fails
	canonDigitsUnsure // [+-]digits, but long or out of range
)

// canonParseDigits parses [+-]digits within bits, the common case of
// strconv.ParseInt.
func canonParseDigits(s []byte, bits int) (int64, int) {
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if len(s) == 0 {
		return 0, canonDigitsNot
	}
	var v int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, canonDigitsNot
		}
		v = v*10 + int64(c-'0') // wraps past 18 digits, checked below
	}
	if len(s) > 18 {
		return 0, canonDigitsUnsure
	}
	if neg {
		v = -v
	}
	if lim := int64(1) << (bits - 1); v < -lim || v >= lim {
		return 0, canonDigitsUnsure
	}
	return v, canonDigitsOK
}

// canonParseBool is convert.go's toBool after TrimSpace. strings.ToLower
// maps no non-ASCII rune onto these words' letters, so ASCII folding is
// the same test.
func canonParseBool(s []byte) (v, ok bool) {
	if len(s) == 0 || len(s) > 5 {
		return false, false
	}
	var b [5]byte
	for i, c := range s {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
	}
	switch string(b[:len(s)]) {
	case "true", "1", "t", "yes":
		return true, true
	case "false", "0", "f", "no":
		return false, true
	}
	return false, false
}

// canonParsedTime is a time as written: its fields and the offset in
// seconds east of UTC.
type canonParsedTime struct {
	year, month, day, hour, minute, second, nsec, off int
}

// canonParseTime reads the common forms of timeLayouts by hand, with
// time.Parse's results: YYYY-MM-DD, or that, T or a space, hh:mm:ss, an
// optional .fraction and an optional Z or ±hh:mm. For RFC 3339 it is
// time.Parse's own fast path (parseRFC3339 in the time package); the
// other layouts' general parser takes more (one-digit hours, a comma
// before the fraction, offsets to 24h), which is left to time.Parse.
// A form accepted here fails every earlier layout, so the first layout
// that parses it gives the same time.
func canonParseTime(s []byte) (t canonParsedTime, ok bool) {
	if len(s) != len("2006-01-02") && len(s) < len("2006-01-02T15:04:05") {
		return t, false
	}
	ok = true
	num := func(b []byte, lo, hi int) int {
		x := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				ok = false
				return lo
			}
			x = x*10 + int(c-'0')
		}
		if x < lo || x > hi {
			ok = false
			return lo
		}
		return x
	}
	t.year = num(s[0:4], 0, 9999)
	t.month = num(s[5:7], 1, 12)
	t.day = num(s[8:10], 1, canonDaysIn(t.month, t.year))
	if !ok || s[4] != '-' || s[7] != '-' {
		return t, false
	}
	if len(s) == len("2006-01-02") {
		return t, true
	}
	t.hour = num(s[11:13], 0, 23)
	t.minute = num(s[14:16], 0, 59)
	t.second = num(s[17:19], 0, 59)
	if !ok || s[10] != 'T' && s[10] != ' ' || s[13] != ':' || s[16] != ':' {
		return t, false
	}
	s = s[19:]
	if len(s) >= 2 && s[0] == '.' && s[1] >= '0' && s[1] <= '9' {
		k := 1
		for ; k < len(s) && s[k] >= '0' && s[k] <= '9'; k++ {
			if k <= 9 { // nanoseconds: later digits are dropped
				t.nsec = t.nsec*10 + int(s[k]-'0')
			}
		}
		for d := k - 1; d < 9; d++ {
			t.nsec *= 10
		}
		s = s[k:]
	}
	switch {
	case len(s) == 0, len(s) == 1 && s[0] == 'Z':
	case len(s) == len("-07:00"):
		hh := num(s[1:3], 0, 23)
		mm := num(s[4:6], 0, 59)
		if !ok || s[0] != '-' && s[0] != '+' || s[3] != ':' {
			return t, false
		}
		t.off = (hh*60 + mm) * 60
		if s[0] == '-' {
			t.off = -t.off
		}
	default:
		return t, false
	}
	return t, true
}

func canonDaysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// canonDaysFromCivil is the day number (0 = 1970-01-01) of a proleptic
// Gregorian date (H. Hinnant's days_from_civil).
func canonDaysFromCivil(y int64, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := canonFloorDiv(y, 400)
	yoe := y - era*400
	mp := int64(m + 9)
	if m > 2 {
		mp = int64(m - 3)
	}
	doy := (153*mp+2)/5 + int64(d) - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// canonCivil is the inverse of canonDaysFromCivil.
func canonCivil(days int64) (y int64, m, d int) {
	z := days + 719468
	era := canonFloorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = int(doy - (153*mp+2)/5 + 1)
	if mp < 10 {
		m = int(mp + 3)
	} else {
		m = int(mp - 9)
	}
	y = yoe + era*400
	if m <= 2 {
		y++
	}
	return y, m, d
}

func canonFloorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// canonAppendDate writes a day number as YYYY-MM-DD.
func canonAppendDate(dst []byte, days int64) []byte {
	y, m, d := canonCivil(days)
	return canonAppendCivil(dst, y, m, d)
}

// canonAppendCivil writes YYYY-MM-DD; DuckDB reads years beyond four
// digits, and negative (astronomical, as Go's) ones with a minus sign.
func canonAppendCivil(dst []byte, y int64, m, d int) []byte {
	if y < 0 {
		dst = append(dst, '-')
		y = -y
	}
	if y < 10000 {
		dst = append(dst, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10))
	} else {
		dst = strconv.AppendInt(dst, y, 10)
	}
	return append(dst, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
}

// canonAppendTime writes a Unix time as the UTC wall clock
// YYYY-MM-DDTHH:MM:SS.ffffff.
func canonAppendTime(dst []byte, sec, usec int64) []byte {
	days := canonFloorDiv(sec, 86400)
	sod := sec - days*86400
	dst = canonAppendDate(dst, days)
	return canonAppendClock(dst, sod/3600, sod/60%60, sod%60, usec)
}

// canonAppendClock writes THH:MM:SS.ffffff.
func canonAppendClock(dst []byte, h, m, s, usec int64) []byte {
	var b [16]byte
	b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9] = 'T', byte('0'+h/10), byte('0'+h%10), ':', byte('0'+m/10), byte('0'+m%10), ':', byte('0'+s/10), byte('0'+s%10), '.'
	for i := 15; i >= 10; i-- {
		b[i] = byte('0' + usec%10)
		usec /= 10
	}
	return append(dst, b[:]...)
}

// canonAppendDecimal is convert.go's decimalConv writing the scaled value
// as a JSON string with exactly scale fractional digits. Plain decimal
// text is rounded on its digits; the other forms big.Rat reads (fractions,
// hex, underscores) take today's big.Rat path.
func canonAppendDecimal(dst, s, raw []byte, c *canonCol) ([]byte, error) {
	var buf [canonDecimalHead]byte
	neg, digits, nd, exp5, ok := canonDecimalDigits(s, &buf)
	if !ok {
		return canonAppendDecimalRat(dst, s, raw, c)
	}
	// The value is digits (nd of them, no leading zeros) times 10^exp5.
	var q [40]byte // at most 38 digits, plus a carry
	nq := 0
	if nd > 0 {
		if exp5 > 1e6 || exp5 < -1e6 {
			return dst, fmt.Errorf("not a decimal: %s", canonTruncate(raw)) // as big.Rat
		}
		k := exp5 + int64(c.scale) // scaled value: digits times 10^k
		cut := nd + k              // its digits before the point
		if cut > int64(c.width) {
			return dst, fmt.Errorf("decimal out of range for DECIMAL(%d,%d): %s", c.width, c.scale, canonTruncate(raw))
		}
		round := false
		switch {
		case k >= 0:
			nq = copy(q[:], digits) // nd <= cut <= width
			for ; nq < int(cut); nq++ {
				q[nq] = '0'
			}
		case cut > 0:
			nq = copy(q[:], digits[:cut])
			round = digits[cut] >= '5'
		case cut == 0:
			round = digits[0] >= '5'
		}
		if round { // half away from zero, on the magnitude
			i := nq - 1
			for ; i >= 0 && q[i] == '9'; i-- {
				q[i] = '0'
			}
			if i >= 0 {
				q[i]++
			} else {
				copy(q[1:], q[:nq])
				q[0] = '1'
				nq++
			}
			if nq > int(c.width) {
				return dst, fmt.Errorf("decimal out of range for DECIMAL(%d,%d): %s", c.width, c.scale, canonTruncate(raw))
			}
		}
	}
	return canonAppendScaled(dst, neg && nq > 0, q[:nq], int(c.scale)), nil
}

// canonDecimalHead is how many leading digits the rounding may read:
// width 38 and the rounding digit.
const canonDecimalHead = 39

// canonDecimalDigits reads [+-]digits[.digits][(e|E)[+-]digits], the plain
// decimal text, as its sign, significant digits (no leading zeros; only
// the first canonDecimalHead when there are more), their count and the
// power of ten that scales them. ok false: s is in another form.
func canonDecimalDigits(s []byte, buf *[canonDecimalHead]byte) (neg bool, digits []byte, nd, exp5 int64, ok bool) {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	ip := s[start:i]
	var fp []byte
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		fp = s[fs:i]
	}
	if len(ip) == 0 && len(fp) == 0 {
		return false, nil, 0, 0, false
	}
	var exp int64
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			eneg = s[i] == '-'
			i++
		}
		es := i
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if i-es >= 18 { // big.Rat fails on an exponent beyond int64
				return false, nil, 0, 0, false
			}
			exp = exp*10 + int64(s[i]-'0')
		}
		if i == es {
			return false, nil, 0, 0, false
		}
		if eneg {
			exp = -exp
		}
	}
	if i != len(s) {
		return false, nil, 0, 0, false
	}
	exp5 = exp - int64(len(fp)) // as big.Rat counts: every fraction digit
	for len(ip) > 0 && ip[0] == '0' {
		ip = ip[1:]
	}
	switch {
	case len(ip) == 0:
		for len(fp) > 0 && fp[0] == '0' {
			fp = fp[1:]
		}
		return neg, fp, int64(len(fp)), exp5, true
	case len(fp) == 0:
		return neg, ip, int64(len(ip)), exp5, true
	}
	n := copy(buf[:], ip)
	n += copy(buf[n:], fp)
	return neg, buf[:n], int64(len(ip) + len(fp)), exp5, true
}

// canonAppendScaled writes the scaled integer q (digits, no sign) as a
// JSON string with scale fractional digits.
func canonAppendScaled(dst []byte, neg bool, q []byte, scale int) []byte {
	dst = append(dst, '"')
	if neg {
		dst = append(dst, '-')
	}
	if len(q) <= scale {
		dst = append(dst, '0')
		if scale > 0 {
			dst = append(dst, '.')
			for i := len(q); i < scale; i++ {
				dst = append(dst, '0')
			}
			dst = append(dst, q...)
		}
	} else {
		dst = append(dst, q[:len(q)-scale]...)
		if scale > 0 {
			dst = append(append(dst, '.'), q[len(q)-scale:]...)
		}
	}
	return append(dst, '"')
}

// canonAppendDecimalRat is decimalConv itself, for the rare forms.
func canonAppendDecimalRat(dst, s, raw []byte, c *canonCol) ([]byte, error) {
	r, ok := new(big.Rat).SetString(string(s))
	if !ok {
		return dst, fmt.Errorf("not a decimal: %s", canonTruncate(raw))
	}
	r.Mul(r, c.mul)
	// Round half away from zero, as DuckDB's casts do.
	num, den := r.Num(), r.Denom()
	q, m := new(big.Int).QuoRem(num, den, new(big.Int))
	if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
		q.Add(q, big.NewInt(int64(num.Sign())))
	}
	if new(big.Int).Abs(q).Cmp(c.limit) >= 0 {
		return dst, fmt.Errorf("decimal out of range for DECIMAL(%d,%d): %s", c.width, c.scale, canonTruncate(raw))
	}
	digits := new(big.Int).Abs(q).String()
	if q.Sign() == 0 {
		digits = ""
	}
	return canonAppendScaled(dst, q.Sign() < 0, []byte(digits), int(c.scale)), nil
}

// canonTruncate is convert.go's truncate.
func canonTruncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// canonStr views b as a string without copying, for strconv and time
// calls that do not keep their argument (only their errors do, and those
// are dropped).
func canonStr(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
