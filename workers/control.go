package workers

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

// ServeControl serves the worker's control subjects, its own
// subjects.Control(step, worker) and the step-wide subjects.ControlStep(step), answering pause, resume, drain
// and ping requests (see subjects.ControlRequest). Drain pauses the worker
// and replies once it holds no message, so every in-flight message has
// been settled. The subjects are the endpoints of a NATS micro service
// (see serveMicro), so `nats micro ls` and `nats micro stats` list the
// worker. The returned function deregisters; call it before the worker stops.
func (w *Worker) ServeControl() (unsubscribe func(), err error) {
	svc, err := w.serveMicro()
	if err != nil {
		return nil, err
	}
	return func() { _ = svc.Stop() }, nil
}

// errUnknownOp answers a control request this worker does not know.
var errUnknownOp = errors.New("unknown control op")

// control carries out one control request; ok is false when the
// request is for another dataset's workers, which this one ignores.
func (w *Worker) control(data []byte) (reply subjects.ControlReply, ok bool) {
	var req subjects.ControlRequest
	if err := json.Unmarshal(data, &req); err != nil {
		req.Op = string(data) // a bare "pause" from the nats CLI works too
	}
	if req.Dataset != "" && req.Dataset != w.cfg.Dataset {
		return reply, false // not addressed to this worker
	}
	reply = subjects.ControlReply{Worker: w.cfg.ID, Step: w.cfg.Step.Name, Dataset: w.cfg.Dataset, Op: req.Op}
	switch req.Op {
	case subjects.CtlPause:
		w.Pause()
		w.waitFor(func() bool { return *w.state.Load() != subjects.StateRunning })
	case subjects.CtlResume:
		// The reply tells the state the resume produced: wait for the
		// fetch loop to leave the pause (unless paused again meanwhile).
		w.Resume()
		if !w.waitFor(func() bool { return *w.state.Load() != subjects.StatePaused || w.paused.Load() }) {
			reply.Error = fmt.Sprintf("still paused after %s", w.cfg.DrainTimeout)
		}
	case subjects.CtlDrain:
		w.Pause()
		if !w.waitFor(func() bool { return *w.state.Load() != subjects.StateRunning && w.stats.inFlight.Load() == 0 }) {
			reply.Error = fmt.Sprintf("still %d in flight after %s", w.stats.inFlight.Load(), w.cfg.DrainTimeout)
		}
	case subjects.CtlPing:
	default:
		reply.Error = fmt.Sprintf("%v %q (pause, resume, drain, ping)", errUnknownOp, req.Op)
	}
	// A ping (service discovery, the supervisor's checks) is routine; a
	// pause, resume or drain is an operator's act worth a line.
	ev := w.log.Info()
	if req.Op == subjects.CtlPing {
		ev = w.log.Debug()
	}
	if reply.Error != "" {
		ev = w.log.Warn().Str("error", reply.Error)
	}
	ev.Str("op", req.Op).Msg("control request")
	w.beat() // let the fleet see the new state now, not at the next beat
	snap := w.Snapshot()
	reply.State, reply.InFlight = snap.State, snap.InFlight
	return reply, true
}

// waitFor polls cond until it holds or DrainTimeout passes. The worker's
// loop signals nothing when it parks, so this polls its own atomics.
func (w *Worker) waitFor(condFunc func() bool) bool {
	deadline := time.Now().Add(w.cfg.DrainTimeout)
	for !condFunc() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
