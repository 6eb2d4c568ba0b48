package console

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetfleet/jetfleet/subjects"
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
	subject := subjects.Control(req.Target)
	_, isStep := subjects.StepByName(req.Target)
	if isStep {
		subject = subjects.ControlStep(req.Target)
	}
	wait := controlWait
	if req.Op == subjects.CtlDrain {
		wait += 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	replies, err := c.control(ctx, subject, subjects.ControlRequest{Op: req.Op, Dataset: req.Dataset}, !isStep)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	if len(replies) == 0 {
		writeError(w, http.StatusGatewayTimeout, "no worker answered on "+subject+" within "+wait.String())
		return
	}
	c.log.Info().Str("op", req.Op).Str("target", req.Target).Int("replies", len(replies)).Str("remote", r.RemoteAddr).Msg("control from the console")
	writeJSON(w, http.StatusOK, controlDoc{Subject: subject, Replies: replies})
}

// control publishes one request and collects replies until ctx ends (or
// the first, for one worker).
func (c *Console) control(ctx context.Context, subject string, req subjects.ControlRequest, one bool) ([]subjects.ControlReply, error) {
	inbox := c.cfg.Conn.NewInbox()
	sub, err := c.cfg.Conn.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	body, _ := json.Marshal(req)
	if err := c.cfg.Conn.PublishMsg(&nats.Msg{Subject: subject, Reply: inbox, Data: body}); err != nil {
		return nil, err
	}
	got := []subjects.ControlReply{}
	for !one || len(got) == 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // the wait is over
		}
		var rep subjects.ControlReply
		if json.Unmarshal(m.Data, &rep) == nil {
			got = append(got, rep)
		}
	}
	return got, nil
}
