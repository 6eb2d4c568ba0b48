package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/metrics"
)

// HandlerConfig configures [NewHandler].
type HandlerConfig struct {
	// JS reads the fleet's state. Required.
	JS jetstream.JetStream
	// Supervisor, if this process runs one: its metrics are served and
	// /readyz waits for it.
	Supervisor *Supervisor
	// Tree, if this process runs one: failed children show in /status.
	Tree *Tree
	// MartsFunc, if set, reports the marts for /status and /metrics.
	MartsFunc MartsFunc
	// ReadyFunc, if set, must return nil for /readyz to say ready.
	ReadyFunc func() error
	// Own, if set, makes the handler a worker process's: /readyz asks
	// for its workers' consumers instead of the account info, and /status
	// and /metrics show only them ([OwnSnapshot]), so the probes need no
	// right the step's user lacks.
	Own *OwnScope
	// Registry gets the metrics; default a new registry with the Go and
	// process collectors. Register the process's own metrics on it too.
	Registry *prometheus.Registry
	// Timeout bounds one status read. Default 5s.
	Timeout time.Duration
	Logger  zerolog.Logger
}

// NewHandler serves, for `jetfleet dev`, `jetfleet supervisor` and
// workers:
//
//	GET /metrics   Prometheus metrics: the fleet (lag, in flight, dead letters,
//	               workers, heartbeat age, marts), this process's handler
//	               latency and, with a supervisor, its counters
//	GET /healthz   200 while the process serves
//	GET /readyz    200 once NATS is reachable (and the supervisor started)
//	GET /status    the `jetfleet status --json` document; ?format=text for the screen
func NewHandler(cfg HandlerConfig) (http.Handler, error) {
	if cfg.JS == nil {
		return nil, fmt.Errorf("%w: HandlerConfig.JS is nil", ErrInvalidConfig)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	var opts []SnapshotOption
	if cfg.MartsFunc != nil {
		opts = append(opts, WithMarts(cfg.MartsFunc))
	}
	if cfg.Tree != nil {
		opts = append(opts, WithTree(cfg.Tree))
	}
	snapshot := func(ctx context.Context) (*Status, error) { return Snapshot(ctx, cfg.JS, opts...) }
	if cfg.Own != nil {
		if cfg.Own.BeatsFunc == nil {
			return nil, fmt.Errorf("%w: OwnScope.BeatsFunc is nil", ErrInvalidConfig)
		}
		snapshot = func(ctx context.Context) (*Status, error) { return OwnSnapshot(ctx, cfg.JS, cfg.Own, cfg.Tree) }
	}
	cs := []prometheus.Collector{&fleetCollector{snapshotFunc: snapshot, timeout: cfg.Timeout, log: cfg.Logger}}
	cs = append(cs, metrics.Collectors()...)
	if cfg.Supervisor != nil {
		cs = append(cs, cfg.Supervisor.Collectors()...)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if _, dup := err.(prometheus.AlreadyRegisteredError); !dup { //nolint:errorlint // the registry returns it unwrapped
				return nil, fmt.Errorf("register metrics: %w", err)
			}
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		if err := ready(ctx, cfg); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), cfg.Timeout)
		defer cancel()
		st, err := snapshot(ctx)
		if err != nil {
			http.Error(w, "status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if r.URL.Query().Get("format") == "text" || strings.HasPrefix(r.Header.Get("Accept"), "text/plain") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_ = RenderText(w, st, TextOptions{})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	return mux, nil
}

func ready(ctx context.Context, cfg HandlerConfig) error {
	if cfg.Own != nil {
		if err := ownReady(ctx, cfg.JS, cfg.Own); err != nil {
			return err
		}
	} else if _, err := cfg.JS.AccountInfo(ctx); err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	if cfg.Supervisor != nil && !cfg.Supervisor.Ready() {
		return fmt.Errorf("supervisor not started")
	}
	if cfg.ReadyFunc != nil {
		return cfg.ReadyFunc()
	}
	return nil
}
