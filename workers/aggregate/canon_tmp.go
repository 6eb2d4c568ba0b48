package aggregate

// TEMPORARY: stands in for canonical.go until it lands.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

type canonEncoder struct {
	schema []Column
	conv   []converter
	key    string
	fields map[string]json.RawMessage
	keyBuf []byte
}

func canonNewEncoder(schema []Column, key string) (*canonEncoder, error) {
	e := &canonEncoder{schema: schema, key: key, fields: map[string]json.RawMessage{}}
	for _, c := range schema {
		conv, err := converterFor(c.Type)
		if err != nil {
			return nil, err
		}
		e.conv = append(e.conv, conv)
	}
	return e, nil
}

func (e *canonEncoder) Encode(dst, rec []byte) ([]byte, []byte, error) {
	clear(e.fields)
	if err := json.Unmarshal(rec, &e.fields); err != nil {
		return dst, nil, fmt.Errorf("aggregate: record is not a JSON object: %w", err)
	}
	rawKey, ok := e.fields[e.key]
	if !ok || isNull(rawKey) {
		return dst, nil, fmt.Errorf("aggregate: record has no key field %q", e.key)
	}
	key, _, err := fieldString(rawKey)
	if err != nil || key == "" {
		return dst, nil, fmt.Errorf("aggregate: record has an empty key field %q", e.key)
	}
	e.keyBuf = append(e.keyBuf[:0], key...)
	for i, c := range e.schema {
		raw, ok := e.fields[c.Name]
		if !ok || isNull(raw) {
			continue
		}
		v, err := e.conv[i](raw)
		if err != nil {
			return dst, nil, fmt.Errorf("aggregate: field %s (%s): %w", c.Name, c.Type, err)
		}
		name, _ := json.Marshal(c.Name)
		dst = append(dst, ',')
		dst = append(dst, name...)
		dst = append(dst, ':')
		switch v := v.(type) {
		case time.Time:
			if baseType(c.Type) == "DATE" {
				dst = strconv.AppendQuote(dst, v.Format("2006-01-02"))
			} else {
				dst = strconv.AppendQuote(dst, v.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z07:00"))
			}
		case duckdb.Decimal:
			dst = strconv.AppendQuote(dst, v.String())
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return dst, nil, err
			}
			dst = append(dst, b...)
		}
	}
	return append(dst, '}'), e.keyBuf, nil
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
