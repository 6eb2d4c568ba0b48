package httpguard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/internal/httpguard"
)

// TestLimit runs real HTTP requests: two hold the slots, the third is
// answered 429 with Retry-After at once, and a slot freed lets the next in.
func TestLimit(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	release := make(chan struct{})
	h := httpguard.Limit(2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("hold") != "" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	get := func(path string) (code int, retryAfter, body string, err error) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			return 0, "", "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), string(b), err
	}
	held := make(chan int, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			code, _, _, err := get("/query?hold=1")
			if err != nil {
				code = -1
			}
			held <- code
		})
		embeddedtest.WaitOrTimeout(t, entered, 10*time.Second, "the held request to reach the handler")
	}
	code, retry, body, err := get("/query")
	require.NoError(t, err)
	require.Equal(t, http.StatusTooManyRequests, code)
	require.Equal(t, "1", retry)
	require.Contains(t, body, "too many requests to /query in progress (at most 2 at a time)")

	release <- struct{}{}
	// One slot is free once the released request has returned.
	embeddedtest.WaitFor(t, 10*time.Second, "a /query answered 200", func() bool { c, _, _, _ := get("/query"); return c == http.StatusOK })
	close(release)
	wg.Wait()
	require.Equal(t, http.StatusOK, <-held)
	require.Equal(t, http.StatusOK, <-held)
}
