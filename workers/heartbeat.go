package workers

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

var hostname, _ = os.Hostname()

// Snapshot returns the worker's current heartbeat: what it would publish now.
func (w *Worker) Snapshot() subjects.Beat {
	hb := subjects.Beat{
		Worker:     w.cfg.ID,
		Step:       w.cfg.Step.Name,
		Dataset:    w.cfg.Dataset,
		Consumer:   w.consumer,
		Host:       hostname,
		PID:        os.Getpid(),
		Version:    w.cfg.Version,
		Started:    w.started.UTC(),
		Time:       time.Now().UTC(),
		IntervalMS: w.cfg.HeartbeatInterval.Milliseconds(),
		State:      *w.state.Load(),
		InFlight:   w.stats.inFlight.Load(),
		Counters: subjects.WorkerCounters{
			Messages:     w.stats.messages.Load(),
			Records:      w.stats.records.Load(),
			Outputs:      w.stats.outputs.Load(),
			DeadLettered: w.stats.deadLettered.Load(),
			Retried:      w.stats.retried.Load(),
			Redelivered:  w.stats.redelivered.Load(),
			Crashes:      w.stats.crashes.Load(),
			Acked:        w.stats.acked.Load(),
			Republished:  w.stats.republished.Load(),
		},
	}
	if e := w.lastErr.Load(); e != nil {
		hb.LastErr = *e
	}
	hb.Waiting = w.Waiting()
	hb.Conn = w.connState()
	if cr := w.reporter.Load(); cr != nil {
		hb.Contract = (*cr).ContractCounts()
	}
	return hb
}

func (w *Worker) heartbeats(ctx context.Context) {
	w.beat()
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.beat()
		}
	}
}

// beat publishes one heartbeat. Heartbeats are core NATS: a lost one is
// harmless, the next one carries the same cumulative counters.
func (w *Worker) beat() {
	data, err := json.Marshal(w.Snapshot())
	if err != nil {
		w.log.Error().Err(err).Msg("encode heartbeat")
		return
	}
	if err := w.cfg.Conn.Publish(subjects.Heartbeat(w.cfg.Step.Name, w.cfg.ID), data); err != nil {
		w.log.Debug().Err(err).Msg("heartbeat")
	}
}
