package main

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

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
// subjects (pause, resume, drain), as the endpoints of the worker's NATS
// micro service (nats micro ls); the returned func deregisters them.
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
