package console

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/httpguard"
	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/supervisor"
)

//go:embed assets
var assets embed.FS

// statusTTL is how long one status read serves the page's polls: every
// open tab polls every two seconds, and a read lists every consumer.
const statusTTL = time.Second

// Console serves the page and its API. Safe for concurrent use.
type Console struct {
	cfg Config
	log zerolog.Logger
	mux *http.ServeMux
	svc startstop.Service

	mu       sync.Mutex
	last     *supervisor.Status
	lastAt   time.Time
	history  *history
	refreshM sync.Mutex // one status read at a time
}

// New checks cfg and returns the console; Start begins its history.
func New(cfg Config) (*Console, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Console{
		cfg: cfg, log: cfg.Logger.With().Str("component", "console").Logger(), mux: http.NewServeMux(),
		history: newHistory(int(15 * time.Minute / cfg.SampleEvery)),
	}
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	c.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	c.mux.Handle("GET /console/", http.StripPrefix("/console", files))
	c.mux.HandleFunc("GET /console/api/status", c.serveStatus)
	c.mux.HandleFunc("GET /console/api/history", c.serveHistory)
	c.mux.HandleFunc("GET /console/api/deadletters", c.serveLetters)
	c.mux.HandleFunc("GET /console/api/deadletters/{seq}", c.serveLetter)
	c.mux.HandleFunc("POST /console/api/replay", c.serveReplay) // a dry run reads only; serveReplay checks the rest
	c.mux.HandleFunc("POST /console/api/control", c.write(c.serveControl))
	c.mux.HandleFunc("GET /console/api/alerts", c.serveAlerts)
	c.mux.Handle("GET /console/api/query", httpguard.Limit(cfg.MaxQueries, http.HandlerFunc(c.serveQuery)))
	return c, nil
}

// csp lets the page run only its own script and style, and no other
// site frame it: a framed page could be clicked into a replay.
const csp = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"

// ServeHTTP serves / and everything under /console/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// Start samples the fleet's rates and lag every Config.SampleEvery until
// Stop; it returns after the first sample.
func (c *Console) Start(ctx context.Context) error {
	return c.svc.Start(ctx, func(ctx context.Context, startedFunc func()) error {
		t := time.NewTicker(c.cfg.SampleEvery)
		defer t.Stop()
		for {
			c.sample(ctx)
			startedFunc()
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}

// Stop ends the sampling; safe without Start.
func (c *Console) Stop(ctx context.Context) error { return c.svc.Stop(ctx) }

// Stopped is closed once the sampling has ended.
func (c *Console) Stopped() <-chan struct{} { return c.svc.Stopped() }

func (c *Console) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		c.log.Debug().Err(err).Msg("history sample")
		return
	}
	c.history.add(st)
}

// status is the fleet as of at most statusTTL ago.
func (c *Console) status(ctx context.Context) (*supervisor.Status, error) {
	c.refreshM.Lock()
	defer c.refreshM.Unlock()
	c.mu.Lock()
	if c.last != nil && time.Since(c.lastAt) < statusTTL {
		st := c.last
		c.mu.Unlock()
		return st, nil
	}
	c.mu.Unlock()
	st, err := supervisor.Snapshot(ctx, c.cfg.JS, c.cfg.Snapshot...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last, c.lastAt = st, time.Now()
	return st, nil
}

// refuseWrite says why a write action is refused.
const refuseWrite = "write actions are off: start the server with --console-write to allow replay, pause, resume and drain"

// write refuses h unless the console was started with writes on.
func (c *Console) write(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.cfg.Write {
			writeError(w, http.StatusForbidden, refuseWrite)
			return
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// apiError is the body of every refused or failed API call.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{Error: msg})
}
