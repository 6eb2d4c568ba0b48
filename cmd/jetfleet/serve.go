package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// serveHTTP serves handler on ln until the returned server is shut down.
func serveHTTP(ln net.Listener, handler http.Handler, log zerolog.Logger) *http.Server {
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("http server")
		}
	}()
	return srv
}

// serveControl subscribes every worker of the fleet to its control
// subjects (pause, resume, drain); the returned func unsubscribes.
func serveControl(fl *fleet.Fleet) (func(), error) {
	var unsubs []func()
	stop := func() {
		for _, u := range unsubs {
			u()
		}
	}
	for _, w := range fl.Workers() {
		u, err := w.ServeControl()
		if err != nil {
			stop()
			return nil, err
		}
		unsubs = append(unsubs, u)
	}
	return stop, nil
}

// martsSource reports the marts whose manifests are under dataDir.
func martsSource(dataDir string) supervisor.MartsFunc {
	return func(context.Context) ([]supervisor.MartStatus, error) {
		manifests, err := marts.ReadManifests(dataDir)
		if err != nil {
			return nil, err
		}
		committed := map[string]uint64{}
		progress, err := marts.ReadProgress(dataDir)
		if err != nil {
			return nil, err
		}
		for _, p := range progress {
			committed[p.Dataset] = p.CommittedSeq
		}
		var out []supervisor.MartStatus
		for _, m := range manifests {
			name := m.Name
			if m.Kind == marts.KindLake {
				name = "lake:" + m.Dataset // the raw clean records, also flushed by the aggregator
			}
			st := supervisor.MartStatus{Name: name, Dataset: m.Dataset, Rows: m.Rows, Partitions: m.Partitions, UpdatedAt: m.UpdatedAt, LastSeq: m.LastSeq}
			if c := committed[m.Dataset]; c > m.LastSeq {
				st.Unflushed = int64(c - m.LastSeq) // sequences, an upper bound on records
			}
			out = append(out, st)
		}
		return out, nil
	}
}
