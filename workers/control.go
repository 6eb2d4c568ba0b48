package workers

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
)

// ServeControl subscribes the worker to its control subjects,
// jf.ctl.<worker> and the step-wide subjects.ControlStep(step), and
// answers pause, resume, drain and ping requests (see
// subjects.ControlRequest). Drain pauses the worker and replies once it
// holds no message, so every in-flight message has been settled. The
// returned function unsubscribes; call it before the worker stops.
func (w *Worker) ServeControl() (unsubscribe func(), err error) {
	nc := w.cfg.Conn
	handle := func(m *nats.Msg) { w.control(m) }
	own, err := nc.Subscribe(subjects.Control(w.cfg.ID), handle)
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subjects.Control(w.cfg.ID), err)
	}
	step, err := nc.Subscribe(subjects.ControlStep(w.cfg.Step.Name), handle)
	if err != nil {
		_ = own.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", subjects.ControlStep(w.cfg.Step.Name), err)
	}
	return func() {
		_ = own.Unsubscribe()
		_ = step.Unsubscribe()
	}, nil
}

// errUnknownOp answers a control request this worker does not know.
var errUnknownOp = errors.New("unknown control op")

func (w *Worker) control(m *nats.Msg) {
	var req subjects.ControlRequest
	if err := json.Unmarshal(m.Data, &req); err != nil {
		req.Op = string(m.Data) // a bare "pause" from the nats CLI works too
	}
	if req.Dataset != "" && req.Dataset != w.cfg.Dataset {
		return // not addressed to this worker
	}
	reply := subjects.ControlReply{Worker: w.cfg.ID, Step: w.cfg.Step.Name, Dataset: w.cfg.Dataset, Op: req.Op}
	switch req.Op {
	case subjects.CtlPause:
		w.Pause()
		w.waitFor(func() bool { return *w.state.Load() != subjects.StateRunning })
	case subjects.CtlResume:
		w.Resume()
	case subjects.CtlDrain:
		w.Pause()
		if !w.waitFor(func() bool { return *w.state.Load() != subjects.StateRunning && w.stats.inFlight.Load() == 0 }) {
			reply.Error = fmt.Sprintf("still %d in flight after %s", w.stats.inFlight.Load(), w.cfg.DrainTimeout)
		}
	case subjects.CtlPing:
	default:
		reply.Error = fmt.Sprintf("%v %q (pause, resume, drain, ping)", errUnknownOp, req.Op)
	}
	w.log.Info().Str("op", req.Op).Str("error", reply.Error).Msg("control request")
	w.beat() // let the fleet see the new state now, not at the next beat
	snap := w.Snapshot()
	reply.State, reply.InFlight = snap.State, snap.InFlight
	if m.Reply == "" {
		return
	}
	data, _ := json.Marshal(reply)
	_ = m.Respond(data)
}

// waitFor polls cond until it holds or DrainTimeout passes. The worker's
// loop signals nothing when it parks, so this polls its own atomics.
func (w *Worker) waitFor(cond func() bool) bool {
	deadline := time.Now().Add(w.cfg.DrainTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
