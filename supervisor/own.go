package supervisor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// OwnScope is what a worker process's probes may read: the consumers of
// its own workers, named by their heartbeats. A step's user under the
// secure config may read its consumers' info and nothing else of
// JetStream (no account info, no consumer lists, no fleet bucket).
type OwnScope struct {
	// BeatsFunc returns the current heartbeat of every worker of the
	// process. Required.
	BeatsFunc func() []subjects.Beat
}

// ownConsumers lists the durable consumers named by beats, by stream.
func ownConsumers(beats []subjects.Beat) [][2]string {
	var out [][2]string
	for _, b := range beats {
		step, ok := subjects.StepByName(b.Step)
		if !ok || step.Input == "" || b.Consumer == "" {
			continue
		}
		ref := [2]string{subjects.StreamFor(step.Input), b.Consumer}
		if !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return cmp.Compare(a[0]+"."+a[1], b[0]+"."+b[1]) })
	return out
}

// ownReady says whether every worker of the process has bound its
// consumer and JetStream answers for it.
func ownReady(ctx context.Context, js jetstream.JetStream, scope *OwnScope) error {
	if !js.Conn().IsConnected() {
		return fmt.Errorf("NATS: %s", js.Conn().Status())
	}
	// A process without step workers (ingest: landing watchers) has no
	// consumer to ask about: connected is ready.
	beats := scope.BeatsFunc()
	for _, b := range beats {
		if b.State == subjects.StateStarting || b.State == subjects.StateStopped {
			return fmt.Errorf("worker %s (%s/%s) is %s", b.Worker, b.Step, b.Dataset, b.State)
		}
	}
	for _, ref := range ownConsumers(beats) {
		if _, err := js.Consumer(ctx, ref[0], ref[1]); err != nil {
			return fmt.Errorf("JetStream: consumer %s on %s: %w", ref[1], ref[0], err)
		}
	}
	return nil
}

// OwnSnapshot is the status of one worker process: its consumers (their
// info, read one by one) with its workers as they are now, and tree's
// children. It reads nothing a step's own user may not; `jetfleet status`
// shows the whole fleet.
func OwnSnapshot(ctx context.Context, js jetstream.JetStream, scope *OwnScope, tree *Tree) (*Status, error) {
	now := time.Now()
	st := &Status{
		Time: now.UTC(), Problems: []string{}, Steps: []StepStatus{}, Marts: []MartStatus{}, Streams: []StreamStatus{}, Balance: []DatasetBalance{}, own: true,
		Notes: []string{"the view of one worker process: its own consumers and workers (jetfleet status shows the fleet)"},
	}
	beats := scope.BeatsFunc()
	var steps []StepStatus
	for _, ref := range ownConsumers(beats) {
		c, err := js.Consumer(ctx, ref[0], ref[1])
		if err != nil {
			return nil, fmt.Errorf("consumer %s on %s: %w", ref[1], ref[0], err)
		}
		ci := c.CachedInfo()
		step, dataset, ok := consumerStep(ci)
		if !ok {
			continue
		}
		row := StepStatus{
			Step: step, Dataset: dataset, Consumer: ci.Name, Stream: ref[0], consumers: []string{ci.Name},
			Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
			DeliveredSeq: ci.Delivered.Stream, AckFloorSeq: ci.AckFloor.Stream, MaxDeliver: ci.Config.MaxDeliver,
			PerMinute: -1, RecordsPerMinute: -1, Workers: []WorkerStatus{},
		}
		if ci.Config.Metadata[subjects.MetaPartition] != "" {
			row.Partitions = 1
		}
		for _, b := range beats {
			if b.Consumer == ci.Name {
				row.Workers = append(row.Workers, WorkerStatus{
					ID: b.Worker, Step: b.Step, Dataset: b.Dataset, Consumer: b.Consumer, Host: b.Host, PID: b.PID,
					Version: b.Version, State: b.State, Liveness: LivenessAlive, Started: b.Started, LastBeat: b.Time,
					UptimeSec: now.Sub(b.Started).Seconds(), InFlight: b.InFlight, Counters: b.Counters, LastErr: b.LastErr,
					IntervalMS: b.IntervalMS, Conn: b.Conn,
				})
			}
		}
		steps = append(steps, row)
	}
	st.Steps = mergePartitions(steps)
	if tree != nil {
		st.Supervisor.Children = tree.States()
	}
	judge(st)
	return st, nil
}
