package httpguard

import (
	"fmt"
	"net/http"
)

// Limit lets at most n requests (at least 1) into next at a time and
// answers the others 429 with Retry-After at once: a queue would hold
// connections, memory and the client's patience, and a client can retry.
func Limit(n int, next http.Handler) http.Handler {
	n = max(n, 1)
	slots := make(chan struct{}, n)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, fmt.Sprintf("too many requests to %s in progress (at most %d at a time): retry in a second", r.URL.Path, n), http.StatusTooManyRequests)
		}
	})
}
