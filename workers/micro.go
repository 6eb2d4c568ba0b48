package workers

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/nats-io/nats.go/micro"

	"github.com/jetfleet/jetfleet/subjects"
)

// serveMicro registers the worker as a NATS micro service named after
// its step, whose endpoints are its control subjects: the requests of
// jetfleet ctl and the supervisor's pings are its traffic, and its stats
// carry the worker's heartbeat (state, in flight, counters). Neither
// endpoint is in a queue group: a step-wide request reaches every worker.
func (w *Worker) serveMicro() (micro.Service, error) {
	svc, err := micro.AddService(w.cfg.Conn, micro.Config{
		Name:        subjects.ServiceName(w.cfg.Step.Name),
		Version:     subjects.SemVer(w.cfg.Version),
		Description: fmt.Sprintf("jetfleet %s step of dataset %s", w.cfg.Step.Name, w.cfg.Dataset),
		Metadata: map[string]string{
			"worker": w.cfg.ID, "step": w.cfg.Step.Name, "dataset": w.cfg.Dataset, "consumer": w.consumer,
			"host": hostname, "pid": strconv.Itoa(os.Getpid()), "version": w.cfg.Version,
		},
		StatsHandler: func(*micro.Endpoint) any { return w.Snapshot() },
	})
	if err != nil {
		return nil, fmt.Errorf("register micro service %s: %w", subjects.ServiceName(w.cfg.Step.Name), err)
	}
	handler := micro.HandlerFunc(w.handleControl)
	for name, subject := range map[string]string{
		subjects.EndpointControl:     subjects.Control(w.cfg.Step.Name, w.cfg.ID),
		subjects.EndpointControlStep: subjects.ControlStep(w.cfg.Step.Name),
	} {
		if err := svc.AddEndpoint(name, handler, micro.WithEndpointSubject(subject), micro.WithEndpointQueueGroupDisabled()); err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("micro endpoint %s on %s: %w", name, subject, err)
		}
	}
	return svc, nil
}

// handleControl answers one control request; a failed one is reported
// as a micro service error (so it counts in the endpoint's stats) with
// the JSON reply as its body.
func (w *Worker) handleControl(req micro.Request) {
	reply, ok := w.control(req.Data())
	if !ok || req.Reply() == "" {
		return
	}
	data, _ := json.Marshal(reply)
	if reply.Error != "" {
		code := "400"
		if reply.Op == subjects.CtlDrain {
			code = "504"
		}
		_ = req.Error(code, reply.Error, data)
		return
	}
	_ = req.Respond(data)
}
