package aggregate

// The converters the aggregate step used before canonical.go: the
// canonical encoder is tested to store exactly what they did.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// converter turns one JSON value (never null) into the Go value the
// DuckDB appender takes for a column type.
type converter func(raw json.RawMessage) (any, error)

var errUnsupportedType = errors.New("unsupported column type")

// baseType is a type's name without parameters, upper case.
func baseType(t string) string {
	t = strings.ToUpper(strings.TrimSpace(t))
	if i := strings.IndexByte(t, '('); i >= 0 {
		t = strings.TrimSpace(t[:i])
	}
	return t
}

func converterFor(typ string) (converter, error) {
	switch baseType(typ) {
	case "VARCHAR", "TEXT", "STRING", "CHAR", "BPCHAR", "JSON":
		return toString, nil
	case "DOUBLE", "FLOAT8":
		return toFloat64, nil
	case "REAL", "FLOAT", "FLOAT4":
		return func(raw json.RawMessage) (any, error) {
			f, err := toFloat64(raw)
			if err != nil {
				return nil, err
			}
			return float32(f.(float64)), nil
		}, nil
	case "BIGINT", "INT8", "LONG":
		return intConv(64, func(v int64) any { return v }), nil
	case "INTEGER", "INT4", "INT", "SIGNED":
		return intConv(32, func(v int64) any { return int32(v) }), nil
	case "SMALLINT", "INT2", "SHORT":
		return intConv(16, func(v int64) any { return int16(v) }), nil
	case "TINYINT", "INT1":
		return intConv(8, func(v int64) any { return int8(v) }), nil
	case "UBIGINT":
		return uintConv(64, func(v uint64) any { return v }), nil
	case "UINTEGER":
		return uintConv(32, func(v uint64) any { return uint32(v) }), nil
	case "USMALLINT":
		return uintConv(16, func(v uint64) any { return uint16(v) }), nil
	case "UTINYINT":
		return uintConv(8, func(v uint64) any { return uint8(v) }), nil
	case "BOOLEAN", "BOOL", "LOGICAL":
		return toBool, nil
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATETIME", "TIMESTAMP_US":
		return toTime, nil
	case "DATE":
		return toDate, nil
	case "DECIMAL", "NUMERIC":
		width, scale, err := decimalParams(typ)
		if err != nil {
			return nil, err
		}
		return decimalConv(width, scale), nil
	}
	return nil, fmt.Errorf("%w %q (use VARCHAR, DOUBLE, REAL, BIGINT, INTEGER, SMALLINT, TINYINT, unsigned ints, BOOLEAN, TIMESTAMPTZ, TIMESTAMP, DATE, DECIMAL(p,s) or JSON)", errUnsupportedType, typ)
}

// fieldString is the text of a JSON value: a string's content, or the
// literal of anything else.
func fieldString(raw json.RawMessage) (string, bool, error) {
	if len(raw) > 0 && raw[0] == '"' {
		if bytes.IndexByte(raw, '\\') < 0 {
			return string(raw[1 : len(raw)-1]), true, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, err
		}
		return s, true, nil
	}
	return string(raw), false, nil
}

func toString(raw json.RawMessage) (any, error) {
	s, _, err := fieldString(raw)
	return s, err
}

func toFloat64(raw json.RawMessage) (any, error) {
	s, _, err := fieldString(raw)
	if err != nil {
		return nil, err
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("not a number: %s", truncate(string(raw)))
	}
	return f, nil
}

func intConv(bits int, wrap func(int64) any) converter {
	return func(raw json.RawMessage) (any, error) {
		s, _, err := fieldString(raw)
		if err != nil {
			return nil, err
		}
		s = strings.TrimSpace(s)
		v, err := strconv.ParseInt(s, 10, bits)
		if err != nil {
			// 3.0 and 1e3 are integers too.
			f, ferr := strconv.ParseFloat(s, 64)
			if ferr != nil || f != math.Trunc(f) || f < -math.Pow(2, float64(bits-1)) || f >= math.Pow(2, float64(bits-1)) {
				return nil, fmt.Errorf("not a %d-bit integer: %s", bits, truncate(string(raw)))
			}
			v = int64(f)
		}
		return wrap(v), nil
	}
}

func uintConv(bits int, wrap func(uint64) any) converter {
	return func(raw json.RawMessage) (any, error) {
		s, _, err := fieldString(raw)
		if err != nil {
			return nil, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(s), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("not an unsigned %d-bit integer: %s", bits, truncate(string(raw)))
		}
		return wrap(v), nil
	}
}

func toBool(raw json.RawMessage) (any, error) {
	s, _, err := fieldString(raw)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "t", "yes":
		return true, nil
	case "false", "0", "f", "no":
		return false, nil
	}
	return nil, fmt.Errorf("not a boolean: %s", truncate(string(raw)))
}

var timeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"}

func toTime(raw json.RawMessage) (any, error) {
	s, quoted, err := fieldString(raw)
	if err != nil {
		return nil, err
	}
	if !quoted {
		// Epoch seconds (or milliseconds when too large for seconds).
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("not a timestamp: %s", truncate(s))
		}
		if math.Abs(f) >= 1e11 {
			return time.UnixMilli(int64(f)).UTC(), nil
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	for _, layout := range timeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return nil, fmt.Errorf("not a timestamp: %q", truncate(s))
}

func toDate(raw json.RawMessage) (any, error) {
	v, err := toTime(raw)
	if err != nil {
		return nil, fmt.Errorf("not a date: %s", truncate(string(raw)))
	}
	t := v.(time.Time)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), nil
}

func decimalParams(typ string) (width, scale uint8, err error) {
	width, scale = 18, 3 // DuckDB's default DECIMAL
	if i := strings.IndexByte(typ, '('); i >= 0 {
		var w, s int
		if _, err := fmt.Sscanf(strings.ReplaceAll(typ[i:], " ", ""), "(%d,%d)", &w, &s); err != nil {
			return 0, 0, fmt.Errorf("%w %q: want DECIMAL(width,scale)", errUnsupportedType, typ)
		}
		if w < 1 || w > 38 || s < 0 || s > w {
			return 0, 0, fmt.Errorf("%w %q: width 1..38, scale 0..width", errUnsupportedType, typ)
		}
		width, scale = uint8(w), uint8(s)
	}
	return width, scale, nil
}

func decimalConv(width, scale uint8) converter {
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(width)), nil)
	mul := new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil))
	return func(raw json.RawMessage) (any, error) {
		s, _, err := fieldString(raw)
		if err != nil {
			return nil, err
		}
		r, ok := new(big.Rat).SetString(strings.TrimSpace(s))
		if !ok {
			return nil, fmt.Errorf("not a decimal: %s", truncate(string(raw)))
		}
		r.Mul(r, mul)
		// Round half away from zero, as DuckDB's casts do.
		num, den := r.Num(), r.Denom()
		q, m := new(big.Int).QuoRem(num, den, new(big.Int))
		if new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2)).Cmp(den) >= 0 {
			q.Add(q, big.NewInt(int64(num.Sign())))
		}
		if new(big.Int).Abs(q).Cmp(limit) >= 0 {
			return nil, fmt.Errorf("decimal out of range for DECIMAL(%d,%d): %s", width, scale, truncate(string(raw)))
		}
		return duckdb.Decimal{Width: width, Scale: scale, Value: q}, nil
	}
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
