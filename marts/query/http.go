package query

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HandlerConfig configures [Handler].
type HandlerConfig struct {
	// Engine configures the engine each request opens.
	Engine Config
	// Timeout bounds one request: opening the engine, the query and its
	// answer. Default 60s.
	Timeout time.Duration
}

// Handler serves queries over HTTP: GET ?q=SQL or POST with the SQL as
// body, and format=csv|json|table (default json). Each request opens a
// fresh engine, so it sees marts created since. A refused or failing
// statement is a 400, a file outside the marts and lake a 403, a query
// past the timeout a 504. It checks no caller: the binary wraps it in
// internal/httpguard (Host, Origin, token, concurrency).
func Handler(cfg HandlerConfig) http.Handler {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
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
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		fail := func(err error, code int) {
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				code, err = http.StatusGatewayTimeout, fmt.Errorf("query timed out after %s", cfg.Timeout)
			case errors.Is(err, ErrOutside):
				code = http.StatusForbidden
			}
			http.Error(w, err.Error(), code)
		}
		e, err := Open(ctx, cfg.Engine)
		if err != nil {
			fail(err, http.StatusInternalServerError)
			return
		}
		res, err := e.Query(ctx, q)
		// Closed before the answer goes out: the result is in memory, and a
		// slow reader then holds none of DuckDB's.
		_ = e.Close()
		if err != nil {
			fail(err, http.StatusBadRequest)
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
