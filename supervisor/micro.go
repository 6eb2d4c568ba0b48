package supervisor

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/micro"
	dto "github.com/prometheus/client_model/go"

	"github.com/jetfleet/jetfleet/subjects"
)

// EndpointStatus is the supervisor's micro endpoint on subjects.SupStatus.
const EndpointStatus = "status"

// serveMicro registers the supervisor as the NATS micro service
// jetfleet-supervisor, next to its workers' services. Its endpoint answers
// status requests on jf.sup.status with the fleet status document; one
// supervisor of several answers each (the default queue group). Its stats
// count the heartbeats it folded and the workers it knows by liveness.
func (s *Supervisor) serveMicro() (micro.Service, error) {
	name := subjects.ServiceName("supervisor")
	svc, err := micro.AddService(s.cfg.Conn, micro.Config{
		Name:        name,
		Version:     subjects.SemVer(s.cfg.Version),
		Description: "jetfleet supervisor: liveness, dead-letter backstop, fleet state",
		Metadata: map[string]string{
			"supervisor": s.cfg.ID, "host": hostname(), "pid": strconv.Itoa(os.Getpid()), "version": s.cfg.Version,
		},
		StatsHandler: func(*micro.Endpoint) any { return s.microStats() },
	})
	if err != nil {
		return nil, fmt.Errorf("register micro service %s: %w", name, err)
	}
	if err := svc.AddEndpoint(EndpointStatus, micro.HandlerFunc(s.handleStatus), micro.WithEndpointSubject(subjects.SupStatus)); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("micro endpoint %s: %w", EndpointStatus, err)
	}
	return svc, nil
}

func (s *Supervisor) handleStatus(req micro.Request) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var opts []SnapshotOption
	if s.cfg.Tree != nil {
		opts = append(opts, WithTree(s.cfg.Tree))
	}
	if s.cfg.MartsFunc != nil {
		opts = append(opts, WithMarts(s.cfg.MartsFunc))
	}
	st, err := Snapshot(ctx, s.js, opts...)
	if err != nil {
		_ = req.Error("500", err.Error(), nil)
		return
	}
	data, err := json.Marshal(st)
	if err != nil {
		_ = req.Error("500", err.Error(), nil)
		return
	}
	_ = req.Respond(data)
}

// supervisorStats is the data of the supervisor's micro stats.
type supervisorStats struct {
	ID         string         `json:"id"`
	Ready      bool           `json:"ready"`
	Heartbeats int64          `json:"heartbeats"`
	Workers    map[string]int `json:"workers"` // by liveness
}

func (s *Supervisor) microStats() supervisorStats {
	st := supervisorStats{ID: s.cfg.ID, Ready: s.ready.Load(), Workers: map[string]int{}}
	var m dto.Metric
	if s.metrics.beats.Write(&m) == nil {
		st.Heartbeats = int64(m.GetCounter().GetValue())
	}
	s.mu.Lock()
	for _, w := range s.workers {
		st.Workers[w.Liveness]++
	}
	s.mu.Unlock()
	return st
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}
