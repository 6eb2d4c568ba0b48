package console

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/jetfleet/jetfleet/marts/query"
)

// maxRows bounds the rows a query answer carries to the page; the CSV
// download (/query?format=csv) has them all.
const maxRows = 1000

// queryDoc is a query's answer: columns with their DuckDB types, so the
// page can tell a time axis, and rows of JSON numbers and text.
type queryDoc struct {
	Columns   []query.Column `json:"columns"`
	Rows      [][]any        `json:"rows"`
	Total     int            `json:"total"`
	Truncated bool           `json:"truncated"`
}

// serveQuery runs one read-only statement on the engine of `jetfleet
// query`, locked down the same way; errors come back as 400 with the
// engine's message, which the page shows under the box.
func (c *Console) serveQuery(w http.ResponseWriter, r *http.Request) {
	if c.cfg.DataDir == "" {
		writeError(w, http.StatusNotFound, "no marts here: start the supervisor with --data-dir to query them")
		return
	}
	q := r.URL.Query().Get("q")
	if strings.TrimSpace(q) == "" {
		writeError(w, http.StatusBadRequest, "no query: write a SELECT over the marts")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), c.cfg.QueryTimeout)
	defer cancel()
	e, err := query.Open(ctx, query.Config{DataDir: c.cfg.DataDir, MemoryLimit: c.cfg.MemoryLimit})
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	res, err := e.Query(ctx, q)
	_ = e.Close()
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code, err = http.StatusGatewayTimeout, fmt.Errorf("query timed out after %s", c.cfg.QueryTimeout)
		case errors.Is(err, query.ErrOutside):
			code = http.StatusForbidden
		}
		writeError(w, code, err.Error())
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="query.csv"`)
		_ = res.Write(w, query.FormatCSV) // the client went away
		return
	}
	doc := queryDoc{Columns: res.Columns, Rows: [][]any{}, Total: len(res.Rows)}
	if doc.Columns == nil {
		doc.Columns = []query.Column{}
	}
	rows := res.Rows
	if len(rows) > maxRows {
		rows, doc.Truncated = rows[:maxRows], true
	}
	for _, row := range rows {
		out := make([]any, len(row))
		for i, v := range row {
			out[i] = cell(v, res.Columns[i].Type)
		}
		doc.Rows = append(doc.Rows, out)
	}
	writeJSON(w, http.StatusOK, doc)
}

// cell is a value as JSON: numbers stay numbers (the chart's y), NULL is
// null, everything else is text as `jetfleet query` prints it.
func cell(v any, typ string) any {
	switch x := v.(type) {
	case nil:
		return nil
	case int, int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		return x
	case float32:
		return cell(float64(x), typ)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return x
	case *big.Int:
		f, _ := new(big.Float).SetInt(x).Float64()
		return f
	}
	s := query.Text(v, typ)
	// DECIMAL and HUGEINT scan as driver types; their text is the number.
	if t := strings.ToUpper(typ); strings.HasPrefix(t, "DECIMAL") || strings.HasSuffix(t, "HUGEINT") {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return s
}
