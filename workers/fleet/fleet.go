package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// ErrInvalidConfig wraps every error in a fleet configuration.
var ErrInvalidConfig = errors.New("invalid fleet config")

// Config says which workers to build.
type Config struct {
	Conn    *nats.Conn
	Logger  zerolog.Logger
	Version string
	// Datasets served by a passthrough pipeline.
	Datasets []string
	// Steps to run; empty means every step of the pipeline.
	Steps []string
	// Replicas per step name; default 1.
	Replicas map[string]int
	// Consumer and Streams tune every worker.
	Consumer subjects.ConsumerOptions
	Streams  subjects.StreamOptions
}

// Member is one worker of the fleet.
type Member struct {
	Name   string // step/dataset#replica
	Worker *workers.Worker
}

// Run runs the member's worker until ctx is cancelled.
func (m Member) Run(ctx context.Context) error { return m.Worker.Run(ctx) }

// PassthroughSteps are the steps of a pipeline without a spec: records go
// ingest -> valid -> clean unchanged.
var PassthroughSteps = []subjects.Step{subjects.StepValidate, subjects.StepTransform}

// Build creates the workers. It does no I/O: workers bind their consumers
// when they run.
func Build(cfg Config) ([]Member, error) {
	if cfg.Conn == nil {
		return nil, fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	for _, s := range cfg.Steps {
		if !slices.ContainsFunc(PassthroughSteps, func(p subjects.Step) bool { return p.Name == s }) {
			return nil, fmt.Errorf("%w: unknown step %q (steps: validate, transform)", ErrInvalidConfig, s)
		}
	}
	var members []Member
	for _, ds := range cfg.Datasets {
		if err := subjects.ValidateToken("dataset", ds); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		for _, step := range PassthroughSteps {
			if len(cfg.Steps) > 0 && !slices.Contains(cfg.Steps, step.Name) {
				continue
			}
			out := step.OutputSubject(ds)
			newHandler := func() (workers.Handler, error) { return workers.Passthrough(out), nil }
			ms, err := replicas(cfg, step, ds, newHandler)
			if err != nil {
				return nil, err
			}
			members = append(members, ms...)
		}
	}
	return members, nil
}

func replicas(cfg Config, step subjects.Step, dataset string, newHandler func() (workers.Handler, error)) ([]Member, error) {
	n := max(cfg.Replicas[step.Name], 1)
	out := make([]Member, 0, n)
	for i := range n {
		w, err := workers.New(workers.Config{
			Conn:           cfg.Conn,
			Step:           step,
			Dataset:        dataset,
			NewHandlerFunc: newHandler,
			Version:        cfg.Version,
			Logger:         cfg.Logger,
			Consumer:       cfg.Consumer,
			Streams:        cfg.Streams,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, Member{Name: fmt.Sprintf("%s/%s#%d", step.Name, dataset, i+1), Worker: w})
	}
	return out, nil
}
