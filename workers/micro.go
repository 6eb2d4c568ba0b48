package workers

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/micro"

	"github.com/jetfleet/jetfleet/subjects"
)

// ServicePrefix starts the NATS micro service name of every jetfleet
// process: `nats micro ls` lists jetfleet-validate, jetfleet-transform,
// jetfleet-aggregate and jetfleet-supervisor.
const ServicePrefix = subjects.MicroServicePrefix

// ServiceName is the micro service name of the workers of step.
func ServiceName(step string) string { return ServicePrefix + step }

// Names of the micro endpoints a worker serves. Both carry the control
// requests of jetfleet ctl and the supervisor's pings.
const (
	EndpointControl     = "control"      // jf.ctl.step.<step>.<worker>
	EndpointControlStep = "control-step" // jf.ctl.step.<step>, every worker of the step
)

// semVerRE is the expression micro validates service versions with.
var semVerRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

var semVerCoreRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)`)

// gitDescribeRE is what git describe appends to a tag: commits since it,
// the commit, and a dirty mark.
var gitDescribeRE = regexp.MustCompile(`^-\d+-g[0-9a-f]+(-dirty)?$`)

// SemVer turns a build version into one micro accepts: a semantic
// version is kept (without a leading v); git describe output such as
// v1.2.3-4-gabcdef-dirty keeps its release and moves the rest into build
// metadata (1.2.3+4-gabcdef-dirty: newer than 1.2.3, not a pre-release);
// anything else (dev, a bare hash) becomes 0.0.0+<it>.
func SemVer(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	core, rest := "0.0.0", v
	if m := semVerCoreRE.FindString(v); m != "" {
		core, rest = m, v[len(m):]
	}
	// A git describe suffix reads as a pre-release in semver, which would
	// sort before its tag; it is build metadata.
	if semVerRE.MatchString(v) && !gitDescribeRE.MatchString(rest) {
		return v
	}
	rest = strings.TrimLeft(rest, "-+.")
	rest = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' {
			return r
		}
		return '-'
	}, rest)
	if rest == "" {
		return core
	}
	return core + "+" + rest
}

// serveMicro registers the worker as a NATS micro service named after
// its step, whose endpoints are its control subjects: the requests of
// jetfleet ctl and the supervisor's pings are its traffic, and its stats
// carry the worker's heartbeat (state, in flight, counters). Neither
// endpoint is in a queue group: a step-wide request reaches every worker.
func (w *Worker) serveMicro() (micro.Service, error) {
	svc, err := micro.AddService(w.cfg.Conn, micro.Config{
		Name:        ServiceName(w.cfg.Step.Name),
		Version:     SemVer(w.cfg.Version),
		Description: fmt.Sprintf("jetfleet %s step of dataset %s", w.cfg.Step.Name, w.cfg.Dataset),
		Metadata: map[string]string{
			"worker": w.cfg.ID, "step": w.cfg.Step.Name, "dataset": w.cfg.Dataset, "consumer": w.consumer,
			"host": hostname, "pid": strconv.Itoa(os.Getpid()), "version": w.cfg.Version,
		},
		StatsHandler: func(*micro.Endpoint) any { return w.Snapshot() },
	})
	if err != nil {
		return nil, fmt.Errorf("register micro service %s: %w", ServiceName(w.cfg.Step.Name), err)
	}
	handler := micro.HandlerFunc(w.handleControl)
	for name, subject := range map[string]string{
		EndpointControl:     subjects.Control(w.cfg.Step.Name, w.cfg.ID),
		EndpointControlStep: subjects.ControlStep(w.cfg.Step.Name),
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
