package query

import (
	"bytes"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

// Column is a result column: name and DuckDB type.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Result is a query's answer, held in memory.
type Result struct {
	Columns []Column
	Rows    [][]any
}

// Collect reads rows into a Result (and closes them), so results of
// queries run elsewhere (the mart builder's mart rules) print alike.
func Collect(rows *sql.Rows) (*Result, error) {
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: make([]Column, len(types))}
	for i, t := range types {
		res.Columns[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	for rows.Next() {
		vals := make([]any, len(types))
		ptrs := make([]any, len(types))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, vals)
	}
	return res, rows.Err()
}

// Format is an output format.
type Format string

// Output formats.
const (
	FormatTable Format = "table"
	FormatCSV   Format = "csv"
	FormatJSON  Format = "json"
)

// ParseFormat checks a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case FormatTable, FormatCSV, FormatJSON:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (table, csv or json)", ErrBadFormat, s)
}

// Write writes the result to w: an aligned table, CSV with a header row,
// or a JSON array of objects with the columns in order.
func (r *Result) Write(w io.Writer, f Format) error {
	switch f {
	case FormatCSV:
		return r.writeCSV(w)
	case FormatJSON:
		return r.writeJSON(w)
	case FormatTable, "":
		return r.writeTable(w)
	}
	return fmt.Errorf("%w %q", ErrBadFormat, f)
}

func (r *Result) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rec := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		rec[i] = c.Name
	}
	if err := cw.Write(rec); err != nil {
		return err
	}
	for _, row := range r.Rows {
		for i, v := range row {
			rec[i] = ""
			if v != nil {
				rec[i] = Text(v, r.Columns[i].Type)
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func (r *Result) writeJSON(w io.Writer) error {
	var b bytes.Buffer
	b.WriteString("[")
	for n, row := range r.Rows {
		if n > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n  {")
		for i, v := range row {
			if i > 0 {
				b.WriteString(", ")
			}
			k, _ := json.Marshal(r.Columns[i].Name)
			b.Write(k)
			b.WriteString(": ")
			val, err := jsonValue(v, r.Columns[i].Type)
			if err != nil {
				return err
			}
			b.Write(val)
		}
		b.WriteString("}")
		if b.Len() > 64<<10 {
			if _, err := w.Write(b.Bytes()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	if len(r.Rows) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("]\n")
	_, err := w.Write(b.Bytes())
	return err
}

func (r *Result) writeTable(w io.Writer) error {
	cells := make([][]string, len(r.Rows)+1)
	widths := make([]int, len(r.Columns))
	right := make([]bool, len(r.Columns))
	cells[0] = make([]string, len(r.Columns))
	for i, c := range r.Columns {
		cells[0][i] = c.Name
		widths[i] = utf8.RuneCountInString(c.Name)
		right[i] = isNumeric(c.Type)
	}
	for n, row := range r.Rows {
		cells[n+1] = make([]string, len(row))
		for i, v := range row {
			s := "NULL"
			if v != nil {
				s = strings.NewReplacer("\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(Text(v, r.Columns[i].Type))
			}
			cells[n+1][i] = s
			widths[i] = max(widths[i], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	line := func(row []string) {
		for i, s := range row {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(s))
			if right[i] {
				b.WriteString(pad + s)
			} else if i == len(row)-1 {
				b.WriteString(s)
			} else {
				b.WriteString(s + pad)
			}
		}
		b.WriteString("\n")
	}
	line(cells[0])
	sep := make([]string, len(widths))
	for i, wd := range widths {
		sep[i] = strings.Repeat("-", wd)
	}
	line(sep)
	for _, row := range cells[1:] {
		line(row)
	}
	fmt.Fprintf(&b, "(%d row%s)\n", len(r.Rows), map[bool]string{true: "", false: "s"}[len(r.Rows) == 1])
	_, err := io.WriteString(w, b.String())
	return err
}

func isNumeric(typ string) bool {
	t := strings.ToUpper(typ)
	for _, p := range []string{"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL", "REAL"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// Text formats a non-NULL value the way DuckDB prints it, with dates as
// YYYY-MM-DD and timestamps with time zone in RFC 3339 UTC.
func Text(v any, typ string) string {
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		switch t := strings.ToUpper(typ); {
		case t == "DATE":
			return x.Format("2006-01-02")
		case strings.HasPrefix(t, "TIMESTAMPTZ"), strings.HasPrefix(t, "TIMESTAMP WITH TIME ZONE"):
			return x.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
		case strings.HasPrefix(t, "TIME") && !strings.HasPrefix(t, "TIMESTAMP"):
			return x.Format("15:04:05.999999")
		default:
			return x.Format("2006-01-02 15:04:05.999999")
		}
	case float64:
		return formatFloat(x, 64)
	case float32:
		return formatFloat(float64(x), 32)
	case bool:
		return strconv.FormatBool(x)
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return fmt.Sprintf("\\x%x", x)
	case *big.Int:
		return x.String()
	case duckdb.Decimal:
		return x.String()
	case duckdb.UUID:
		return x.String()
	case *duckdb.UUID:
		return x.String()
	case fmt.Stringer:
		return x.String()
	case []any, map[string]any, duckdb.Map:
		b, err := json.Marshal(toJSONable(x, ""))
		if err != nil {
			return fmt.Sprint(x)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

func formatFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e15) {
		return strconv.FormatFloat(f, 'g', -1, bits)
	}
	return strconv.FormatFloat(f, 'f', -1, bits)
}

func jsonValue(v any, typ string) ([]byte, error) {
	return json.Marshal(toJSONable(v, typ))
}

// toJSONable maps a scanned value to what encoding/json writes well:
// numbers stay numbers, NaN and infinities become null, the rest text.
func toJSONable(v any, typ string) any {
	switch x := v.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return x
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case float32:
		return toJSONable(float64(x), typ)
	case *big.Int:
		return json.Number(x.String())
	case duckdb.Decimal:
		return json.Number(x.String())
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSONable(e, "")
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toJSONable(e, "")
		}
		return out
	case duckdb.Map:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = toJSONable(e, "")
		}
		return out
	}
	return Text(v, typ)
}
