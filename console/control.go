package console

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

// controlRequest is the body of POST /console/api/control: pause, resume
// or drain a step (every worker of it, of Dataset if set) or one worker.
type controlRequest struct {
	Op      string `json:"op"`
	Target  string `json:"target"`
	Dataset string `json:"dataset"`
}

type controlDoc struct {
	Subject string                  `json:"subject"`
	Replies []subjects.ControlReply `json:"replies"`
}

// controlWait is how long replies are collected, as `jetfleet ctl` does;
// a drain is answered once the workers hold nothing.
const controlWait = 2 * time.Second

func (c *Console) serveControl(w http.ResponseWriter, r *http.Request) {
	var req controlRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad control request: "+err.Error())
		return
	}
	switch req.Op {
	case subjects.CtlPause, subjects.CtlResume, subjects.CtlDrain:
	default:
		writeError(w, http.StatusBadRequest, "op must be pause, resume or drain")
		return
	}
	if err := subjects.ValidateToken("target", req.Target); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	wait := controlWait
	if req.Op == subjects.CtlDrain {
		wait += 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	step, worker := req.Target, ""
	if _, isStep := subjects.StepByName(req.Target); !isStep {
		worker = req.Target
		var err error
		if step, err = supervisor.StepOfWorker(ctx, c.cfg.Conn, worker, controlWait); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
	}
	res, err := supervisor.SendControl(ctx, c.cfg.Conn, step, worker, subjects.ControlRequest{Op: req.Op, Dataset: req.Dataset}, wait)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	subject, replies := res.Subject, res.Trusted
	for _, u := range res.Untrusted {
		c.log.Warn().Str("subject", subject).Str("claims_worker", u.Worker).Str("claims_step", u.Step).Str("why", supervisor.WhyUntrusted(u, step)).Msg("ignored a control reply")
	}
	if len(replies) == 0 {
		writeError(w, http.StatusGatewayTimeout, "no worker answered on "+subject+" within "+wait.String())
		return
	}
	c.log.Info().Str("op", req.Op).Str("target", req.Target).Int("replies", len(replies)).Str("remote", r.RemoteAddr).Msg("control from the console")
	writeJSON(w, http.StatusOK, controlDoc{Subject: subject, Replies: replies})
}
