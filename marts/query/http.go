package query

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// Handler serves queries over HTTP: GET ?q=SQL or POST with the SQL as
// body, and format=csv|json|table (default json). Each request opens a
// fresh engine, so it sees marts created since. Errors are 400 for a
// refused or failing statement.
func Handler(cfg Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		if r.Method == http.MethodPost {
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			q = string(b)
		} else if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET ?q= or POST", http.StatusMethodNotAllowed)
			return
		}
		format := FormatJSON
		if f := r.URL.Query().Get("format"); f != "" {
			var err error
			if format, err = ParseFormat(f); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		if strings.TrimSpace(q) == "" {
			http.Error(w, "no query: pass ?q=SELECT... or POST the SQL", http.StatusBadRequest)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		e, err := Open(ctx, cfg)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer e.Close()
		res, err := e.Query(ctx, q)
		if err != nil {
			code := http.StatusBadRequest
			if errors.Is(err, context.DeadlineExceeded) {
				code = http.StatusGatewayTimeout
			}
			http.Error(w, err.Error(), code)
			return
		}
		switch format {
		case FormatCSV:
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		case FormatJSON:
			w.Header().Set("Content-Type", "application/json")
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		_ = res.Write(w, format) // the client went away
	})
}
