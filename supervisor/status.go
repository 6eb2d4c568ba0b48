package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// Status is the fleet as `jetfleet status --json` and GET /status show
// it. The document is stable: fields are only ever added. See
// docs/status.md.
type Status struct {
	Time time.Time `json:"time"`
	// Healthy is false when Problems is not empty.
	Healthy bool `json:"healthy"`
	// Headline is one line saying healthy or what is wrong.
	Headline string `json:"headline"`
	// Problems make the fleet unhealthy; Notes are worth knowing.
	Problems   []string         `json:"problems"`
	Notes      []string         `json:"notes"`
	Supervisor SupervisorStatus `json:"supervisor"`
	Streams    []StreamStatus   `json:"streams"`
	// Steps has one entry per durable consumer (step and dataset), in
	// pipeline order, plus one per dead-letter subject without consumer.
	Steps []StepStatus `json:"steps"`
	Marts []MartStatus `json:"marts"`
	// DeadLetters is the number of messages in JF_DLQ: the sum of steps[].dlq.
	DeadLetters uint64 `json:"dead_letters"`
	// Landing is the jf-landing object store, when it exists: files
	// uploaded for the ingest step and not yet ingested.
	Landing *LandingStatus `json:"landing,omitempty"`
	// Balance is each dataset's books: published = clean + dead-lettered +
	// duplicates (+ in flight), and what is in none of them.
	Balance []DatasetBalance `json:"balance"`

	dlqLastSeq uint64
	// own marks the view of one worker process ([OwnSnapshot]), which
	// cannot know whether a supervisor runs.
	own bool
}

// LandingStatus counts objects in the landing bucket not yet moved to
// done/ or failed/ by the ingest step.
type LandingStatus struct {
	Waiting int `json:"waiting"`
	// Names are the first few waiting objects.
	Names []string `json:"names,omitempty"`
	// Error is why the bucket could not be listed (e.g. permissions).
	Error string `json:"error,omitempty"`
}

// SupervisorStatus says whether a supervisor is running. Without one,
// heartbeats are not folded (worker liveness is as of the last write)
// and advisories are not turned into dead letters.
type SupervisorStatus struct {
	Up       bool         `json:"up"`
	ID       string       `json:"id,omitempty"`
	Host     string       `json:"host,omitempty"`
	PID      int          `json:"pid,omitempty"`
	Version  string       `json:"version,omitempty"`
	Started  time.Time    `json:"started,omitzero"`
	LastSeen time.Time    `json:"last_seen,omitzero"`
	Children []ChildState `json:"children,omitempty"`
	// IntervalMS is how often the supervisor announces itself.
	IntervalMS int64 `json:"interval_ms,omitempty"`
}

// StreamStatus is one stage stream.
type StreamStatus struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	// Replicas is the stream's configured replica count (3 on a cluster).
	Replicas int `json:"replicas"`
	// Cluster says which node leads the stream and how its other replicas
	// are doing; absent on a single server.
	Cluster *StreamCluster `json:"cluster,omitempty"`
}

// StreamCluster is where a replicated stream lives.
type StreamCluster struct {
	Leader   string       `json:"leader"`
	Replicas []StreamPeer `json:"replicas"`
}

// StreamPeer is one follower replica of a stream.
type StreamPeer struct {
	Name    string `json:"name"`
	Current bool   `json:"current"`
	Offline bool   `json:"offline"`
	// Lag is how many operations the replica is behind the leader.
	Lag uint64 `json:"lag"`
	// SeenAgoSec is how long ago the leader last heard from it.
	SeenAgoSec float64 `json:"seen_ago_s"`
}

// peerLostAfter is how long a replica that is not current may be silent
// before status calls it down rather than catching up: a killed node is
// marked offline by the cluster only later.
const peerLostAfter = 10 * time.Second

func (p StreamPeer) down() bool {
	return p.Offline || (!p.Current && p.SeenAgoSec > peerLostAfter.Seconds())
}

// StepStatus is one step on one dataset: its durable consumer and the
// workers that share it.
type StepStatus struct {
	Step     string `json:"step"`
	Dataset  string `json:"dataset"`
	Consumer string `json:"consumer"`
	Stream   string `json:"stream"`
	// State is ok, idle, paused, waiting (its workers consume nothing
	// until something they need is there, see Waiting), failed,
	// no_workers, stale or no_consumer (a dead-letter subject whose
	// consumer is gone).
	State string `json:"state"`
	// Pending is the consumer's lag: messages not yet delivered.
	Pending uint64 `json:"pending"`
	// AckPending is in flight: delivered, not yet acked.
	AckPending int `json:"ack_pending"`
	// Redelivered is messages currently redelivered and unacked.
	Redelivered int `json:"redelivered"`
	// DLQ is the number of dead letters on jf.dlq.<step>.<dataset>.
	DLQ uint64 `json:"dlq"`
	// DeliveredSeq is the stream sequence of the last delivered message;
	// AckFloorSeq the one below which everything is acked.
	DeliveredSeq uint64 `json:"delivered_seq"`
	AckFloorSeq  uint64 `json:"ack_floor_seq"`
	MaxDeliver   int    `json:"max_deliver"`
	// Processed sums the acked counters of the step's live workers.
	Processed int64 `json:"processed"`
	// PerMinute is messages the step acked (or terminated) over the last
	// minute, from its workers' counters as the supervisor measured them;
	// -1 when no supervisor measures it. A bulk message counts once;
	// RecordsPerMinute counts its records (handled or dead-lettered).
	PerMinute        int64 `json:"per_minute"`
	RecordsPerMinute int64 `json:"records_per_minute"`
	Paused           bool  `json:"paused"`
	// Waiting is what the step's live workers wait for when they all wait.
	Waiting string `json:"waiting,omitempty"`
	// Partitions is the number of partition consumers (one per key
	// partition of the clean stage) summed up in this row; Consumer then
	// names them with a wildcard, aggregate_<dataset>_p*.
	Partitions int `json:"partitions,omitempty"`
	consumers  []string
	// Failed is the error of an in-process child that exceeded its
	// restart intensity.
	Failed  string         `json:"failed,omitempty"`
	Workers []WorkerStatus `json:"workers"`
	// Contract sums the schema contract decisions its live workers report
	// (docs/pipeline.md, "Schema contracts"): fields outside the schema.
	Contract *subjects.ContractCounts `json:"contract,omitempty"`
}

// Liveness of a worker as the supervisor sees it.
const (
	LivenessAlive   = "alive"   // beating
	LivenessStale   = "stale"   // missed 3 beats
	LivenessDead    = "dead"    // gone past its TTL without a goodbye
	LivenessStopped = "stopped" // said goodbye
)

// WorkerStatus is a worker's last heartbeat with its liveness. It is also
// the value of its key in the fleet bucket.
type WorkerStatus struct {
	ID       string `json:"id"`
	Step     string `json:"step"`
	Dataset  string `json:"dataset"`
	Consumer string `json:"consumer,omitempty"`
	Host     string `json:"host"`
	PID      int    `json:"pid"`
	Version  string `json:"version,omitempty"`
	// State is what the worker reports: running, paused, draining,
	// starting, waiting or stopped.
	State string `json:"state"`
	// Waiting is what a worker in state waiting waits for.
	Waiting  string    `json:"waiting,omitempty"`
	Liveness string    `json:"liveness"`
	Started  time.Time `json:"started"`
	// LastBeat is when the supervisor received the last heartbeat.
	LastBeat   time.Time               `json:"last_beat"`
	BeatAgeSec float64                 `json:"beat_age_s"`
	UptimeSec  float64                 `json:"uptime_s"`
	InFlight   int64                   `json:"in_flight"`
	Counters   subjects.WorkerCounters `json:"counters"`
	LastErr    string                  `json:"last_error,omitempty"`
	IntervalMS int64                   `json:"interval_ms"`
	// StaleAfterMS and DeadAfterMS are the thresholds applied to it.
	StaleAfterMS int64 `json:"stale_after_ms"`
	DeadAfterMS  int64 `json:"dead_after_ms"`
	// Conn is the worker's NATS connection as of its last beat: server,
	// status and reconnect count.
	Conn *subjects.ConnState `json:"conn,omitempty"`
	// Contract is what its schema contract did (transform workers).
	Contract *subjects.ContractCounts `json:"contract,omitempty"`
}

// MartStatus is one data mart, as reported by a [MartsFunc].
type MartStatus struct {
	Name    string `json:"name"`
	Dataset string `json:"dataset,omitempty"`
	Rows    int64  `json:"rows"`
	// Partitions is the number of Parquet partitions written.
	Partitions int       `json:"partitions"`
	UpdatedAt  time.Time `json:"updated_at"`
	// LastSeq is the highest JF_CLEAN stream sequence reflected in the
	// mart's files; 0 if unknown.
	LastSeq uint64 `json:"last_seq"`
	// Unflushed counts records consumed but not yet in the files.
	Unflushed int64 `json:"unflushed"`
	// Rebuilding says why the mart is being recomputed from the lake (its
	// definition changed); RebuiltAt is when the last rebuild was written.
	Rebuilding string     `json:"rebuilding,omitempty"`
	RebuiltAt  *time.Time `json:"rebuilt_at,omitempty"`
	Err        string     `json:"error,omitempty"`
}

// MartsFunc reports the marts; [Snapshot] and the supervisor call it.
// It must be safe for concurrent use.
type MartsFunc func(ctx context.Context) ([]MartStatus, error)

// SnapshotOption tunes [Snapshot].
type SnapshotOption func(*snapshotOpts) error

type snapshotOpts struct {
	marts    MartsFunc
	progress ProgressFunc
	tree     *Tree
	nowFunc  func() time.Time
}

// WithMarts reports marts from f instead of the fleet bucket.
func WithMarts(f MartsFunc) SnapshotOption {
	return func(o *snapshotOpts) error {
		if f == nil {
			return fmt.Errorf("%w: nil MartsFunc", ErrInvalidConfig)
		}
		o.marts = f
		return nil
	}
}

// WithTree adds the in-process tree's children, so a child that
// escalated shows as failed even before a supervisor writes it.
func WithTree(t *Tree) SnapshotOption {
	return func(o *snapshotOpts) error {
		o.tree = t
		return nil
	}
}

// Snapshot reads the fleet's state from JetStream directly: the consumer
// info of every jetfleet consumer on JF_INGEST, JF_VALID and JF_CLEAN,
// dead-letter counts per jf.dlq.<step>.<dataset>, and the worker,
// supervisor and mart records of the fleet bucket. It works with no
// supervisor running, and says so.
func Snapshot(ctx context.Context, js jetstream.JetStream, opts ...SnapshotOption) (*Status, error) {
	o := snapshotOpts{nowFunc: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	now := o.nowFunc()
	st := &Status{Time: now.UTC(), Problems: []string{}, Notes: []string{}, Steps: []StepStatus{}, Marts: []MartStatus{}, Streams: []StreamStatus{}, Balance: []DatasetBalance{}}

	missing := 0
	for _, name := range subjects.StageStreams {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			missing++
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("stream %s: %w", name, err)
		}
		info := s.CachedInfo()
		ss := info.State
		st.Streams = append(st.Streams, StreamStatus{
			Name: name, Messages: ss.Msgs, Bytes: ss.Bytes, FirstSeq: ss.FirstSeq, LastSeq: ss.LastSeq,
			Replicas: info.Config.Replicas, Cluster: streamCluster(info),
		})
		var steps []StepStatus
		lister := s.ListConsumers(ctx)
		for ci := range lister.Info() {
			step, dataset, ok := consumerStep(ci)
			if !ok {
				continue
			}
			var partitions int
			if ci.Config.Metadata[subjects.MetaPartition] != "" {
				partitions = 1
			}
			steps = append(steps, StepStatus{
				Step: step, Dataset: dataset, Consumer: ci.Name, Stream: name, Partitions: partitions, consumers: []string{ci.Name},
				Pending: ci.NumPending, AckPending: ci.NumAckPending, Redelivered: ci.NumRedelivered,
				DeliveredSeq: ci.Delivered.Stream, AckFloorSeq: ci.AckFloor.Stream, MaxDeliver: ci.Config.MaxDeliver,
				PerMinute: -1, RecordsPerMinute: -1, Workers: []WorkerStatus{},
			})
		}
		if err := lister.Err(); err != nil {
			return nil, fmt.Errorf("list consumers of %s: %w", name, err)
		}
		slices.SortFunc(steps, func(a, b StepStatus) int { return cmp.Compare(a.Consumer, b.Consumer) })
		st.Steps = append(st.Steps, mergePartitions(steps)...)
	}
	if missing == len(subjects.StageStreams) {
		st.Problems = append(st.Problems, "no jetfleet streams on this server (no worker has started yet)")
	}

	if err := addDeadLetters(ctx, js, st); err != nil {
		return nil, err
	}
	addLanding(ctx, js, st)

	kv, err := openFleetKV(ctx, js)
	if err != nil {
		return nil, err
	}
	if err := addFleet(ctx, kv, st, now); err != nil {
		return nil, err
	}
	if o.tree != nil {
		st.Supervisor.Children = mergeChildren(st.Supervisor.Children, o.tree.States())
	}
	if o.marts != nil {
		marts, err := o.marts(ctx)
		if err != nil {
			st.Problems = append(st.Problems, "marts: "+err.Error())
		}
		st.Marts = marts
	} else if kv != nil {
		if e, err := kv.Get(ctx, subjects.KeyMarts); err == nil {
			_ = json.Unmarshal(e.Value(), &st.Marts)
		}
	}
	if st.Marts == nil {
		st.Marts = []MartStatus{}
	}
	in, err := readBalanceInputs(ctx, kv, o, st)
	if err != nil {
		return nil, err
	}
	addBalance(st, in)
	judge(st)
	return st, nil
}

// consumerStep tells a jetfleet consumer by its metadata or its name.
func consumerStep(ci *jetstream.ConsumerInfo) (step, dataset string, ok bool) {
	if s, d := ci.Config.Metadata[subjects.MetaStep], ci.Config.Metadata[subjects.MetaDataset]; s != "" && d != "" {
		return s, d, true
	}
	step, dataset, ok = subjects.ParseConsumerName(ci.Name)
	if !ok {
		return "", "", false
	}
	_, known := subjects.StepByName(step)
	return step, dataset, known
}

// addDeadLetters counts JF_DLQ messages per subject and adds them to the
// steps, adding a row for a dead-letter subject without a consumer so
// that steps[].dlq always sums to the dead letters stored.
func addDeadLetters(ctx context.Context, js jetstream.JetStream, st *Status) error {
	s, err := js.Stream(ctx, subjects.StreamDLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subjects.AllDeadLetters))
	if err != nil {
		return fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	st.DeadLetters = info.State.Msgs
	st.dlqLastSeq = info.State.LastSeq
	subs := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		subs = append(subs, subj)
	}
	slices.Sort(subs)
	for _, subj := range subs {
		n := info.State.Subjects[subj]
		p, err := subjects.Parse(subj)
		if err != nil || p.Kind != subjects.KindDLQ {
			continue
		}
		if i := findStep(st.Steps, p.Step, p.Dataset); i >= 0 {
			st.Steps[i].DLQ += n
			continue
		}
		st.Steps = append(st.Steps, StepStatus{
			Step: p.Step, Dataset: p.Dataset, Consumer: subjects.ConsumerName(p.Step, p.Dataset),
			State: "no_consumer", DLQ: n, PerMinute: -1, RecordsPerMinute: -1, Workers: []WorkerStatus{},
		})
	}
	return nil
}

func findStep(steps []StepStatus, step, dataset string) int {
	return slices.IndexFunc(steps, func(s StepStatus) bool { return s.Step == step && s.Dataset == dataset })
}

// addFleet adds workers, supervisors and rates from the fleet bucket.
func addFleet(ctx context.Context, kv jetstream.KeyValue, st *Status, now time.Time) error {
	sups, err := readAll(ctx, kv, subjects.KeyPrefixSupervisor)
	if err != nil {
		return err
	}
	for _, v := range sups {
		var s SupervisorStatus
		if json.Unmarshal(v, &s) != nil {
			continue
		}
		fresh := s.IntervalMS > 0 && now.Sub(s.LastSeen) <= 3*time.Duration(s.IntervalMS)*time.Millisecond
		if fresh && (!st.Supervisor.Up || s.LastSeen.After(st.Supervisor.LastSeen)) {
			children := mergeChildren(st.Supervisor.Children, s.Children)
			st.Supervisor = s
			st.Supervisor.Up = true
			st.Supervisor.Children = children
		}
	}
	for _, prefix := range []string{subjects.KeyPrefixWorker, subjects.KeyPrefixGone} {
		recs, err := readAll(ctx, kv, prefix)
		if err != nil {
			return err
		}
		for _, v := range recs {
			var w WorkerStatus
			if json.Unmarshal(v, &w) != nil || w.ID == "" {
				continue
			}
			if prefix == subjects.KeyPrefixWorker {
				// The bucket may hold a record its TTL is about to remove,
				// or one no supervisor has updated: judge by age.
				w.Liveness = livenessAt(w, now)
			}
			w.BeatAgeSec = secs(now.Sub(w.LastBeat))
			if w.Liveness == LivenessAlive || w.Liveness == LivenessStale {
				w.UptimeSec = secs(now.Sub(w.Started))
			}
			i := findStep(st.Steps, w.Step, w.Dataset)
			if i < 0 {
				if w.Liveness == LivenessStopped {
					continue // said goodbye to a step that has no consumer now
				}
				st.Steps = append(st.Steps, StepStatus{
					Step: w.Step, Dataset: w.Dataset, Consumer: subjects.ConsumerName(w.Step, w.Dataset),
					State: "no_consumer", PerMinute: -1, RecordsPerMinute: -1, Workers: []WorkerStatus{},
				})
				i = len(st.Steps) - 1
			}
			if j := slices.IndexFunc(st.Steps[i].Workers, func(x WorkerStatus) bool { return x.ID == w.ID }); j >= 0 {
				if st.Steps[i].Workers[j].LastBeat.After(w.LastBeat) {
					continue
				}
				st.Steps[i].Workers[j] = w
				continue
			}
			st.Steps[i].Workers = append(st.Steps[i].Workers, w)
		}
	}
	for i := range st.Steps {
		st.Steps[i].Contract = sumContracts(st.Steps[i].Workers)
	}
	rates, err := readAll(ctx, kv, subjects.KeyPrefixRate)
	if err != nil {
		return err
	}
	for key, v := range rates {
		var r rateRecord
		if json.Unmarshal(v, &r) != nil || now.Sub(r.At) > time.Minute {
			continue
		}
		t := keyTokens(key)
		if len(t) != 1 {
			continue
		}
		for i := range st.Steps {
			if slices.Contains(st.Steps[i].consumers, t[0]) {
				st.Steps[i].PerMinute = max(st.Steps[i].PerMinute, 0) + r.PerMinute
				st.Steps[i].RecordsPerMinute = max(st.Steps[i].RecordsPerMinute, 0) + r.RecordsPerMinute
			}
		}
	}
	for i := range st.Steps {
		slices.SortFunc(st.Steps[i].Workers, func(a, b WorkerStatus) int {
			return cmp.Or(cmp.Compare(livenessRank(a.Liveness), livenessRank(b.Liveness)), cmp.Compare(a.ID, b.ID))
		})
	}
	return nil
}

func livenessRank(l string) int {
	switch l {
	case LivenessAlive:
		return 0
	case LivenessStale:
		return 1
	case LivenessDead:
		return 2
	}
	return 3
}

// livenessAt judges a worker record by the age of its last beat.
func livenessAt(w WorkerStatus, now time.Time) string {
	if w.State == subjects.StateStopped {
		return LivenessStopped
	}
	age := now.Sub(w.LastBeat)
	switch {
	case w.DeadAfterMS > 0 && age > time.Duration(w.DeadAfterMS)*time.Millisecond:
		return LivenessDead
	case w.StaleAfterMS > 0 && age > time.Duration(w.StaleAfterMS)*time.Millisecond:
		return LivenessStale
	}
	return LivenessAlive
}

func secs(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func mergeChildren(a, b []ChildState) []ChildState {
	out := slices.Clone(a)
	for _, c := range b {
		if i := slices.IndexFunc(out, func(x ChildState) bool { return x.Name == c.Name }); i >= 0 {
			out[i] = c
			continue
		}
		out = append(out, c)
	}
	return out
}

// childStep maps a tree child's name ("validate/orders", as
// workers/fleet names members "validate/orders#0", or a consumer name
// "validate_orders") to a step.
func childStep(name string) (step, dataset string, ok bool) {
	name, _, _ = strings.Cut(name, "#")
	parts := strings.Split(name, "/")
	if len(parts) >= 2 {
		return parts[0], parts[1], true
	}
	return subjects.ParseConsumerName(name)
}

// judge fills in step states, problems, notes and the headline.
func judge(st *Status) {
	if !st.Supervisor.Up && !st.own {
		st.Problems = append(st.Problems, "supervisor is down: worker liveness is as last recorded, advisories are not watched (start `jetfleet supervisor`)")
	}
	for _, c := range st.Supervisor.Children {
		if c.State != "failed" {
			continue
		}
		if step, ds, ok := childStep(c.Name); ok {
			if i := findStep(st.Steps, step, ds); i >= 0 {
				st.Steps[i].Failed = c.LastErr
				continue
			}
		}
		st.Problems = append(st.Problems, fmt.Sprintf("%s failed: %s", c.Name, c.LastErr))
	}
	alive := 0
	for i := range st.Steps {
		s := &st.Steps[i]
		name := s.Step + "/" + s.Dataset
		var live, stale, dead, paused, waiting int
		for _, w := range s.Workers {
			switch w.Liveness {
			case LivenessAlive:
				live++
				if w.State == subjects.StatePaused {
					paused++
				}
				if w.State == subjects.StateWaiting {
					waiting++
					s.Waiting = w.Waiting
				}
			case LivenessStale:
				stale++
			case LivenessDead:
				dead++
			}
			if w.Liveness == LivenessAlive || w.Liveness == LivenessStale {
				s.Processed += w.Counters.Acked
			}
		}
		alive += live
		s.Paused = live > 0 && paused == live
		if waiting == 0 || waiting < live {
			s.Waiting = "" // a worker that consumes carries the step
		}
		switch {
		case s.Failed != "":
			s.State = "failed"
			st.Problems = append(st.Problems, fmt.Sprintf("%s failed: %s", name, s.Failed))
		case s.State == "no_consumer":
		case s.Waiting != "":
			s.State = "waiting"
			st.Problems = append(st.Problems, fmt.Sprintf("%s is not ready, it consumes nothing: %s", name, s.Waiting))
		case s.Paused:
			s.State = "paused"
			st.Notes = append(st.Notes, fmt.Sprintf("%s is paused (jetfleet ctl resume %s)", name, s.Step))
		case live == 0 && stale > 0:
			s.State = "stale"
		case live == 0 && (s.Pending > 0 || s.AckPending > 0):
			s.State = "no_workers"
			st.Problems = append(st.Problems, fmt.Sprintf("%s: %d pending and no live worker", name, s.Pending+uint64(s.AckPending)))
		case live == 0:
			s.State = "no_workers"
		case s.Pending == 0 && s.AckPending == 0:
			s.State = "idle"
		default:
			s.State = "ok"
		}
		if stale > 0 {
			st.Problems = append(st.Problems, fmt.Sprintf("%s: %d worker(s) stale (missed 3 heartbeats: process hung or its NATS connection down)", name, stale))
		}
		st.Notes = append(st.Notes, reconnectNotes(st.Time, s.Workers)...)
		if dead > 0 {
			msg := fmt.Sprintf("%s: %d worker(s) died without saying goodbye", name, dead)
			if live == 0 {
				st.Problems = append(st.Problems, msg)
			} else {
				st.Notes = append(st.Notes, msg+"; others carry on")
			}
		}
	}
	for _, ss := range st.Streams {
		if p, n := streamReplicaHealth(ss); p != "" {
			st.Problems = append(st.Problems, p)
		} else if n != "" {
			st.Notes = append(st.Notes, n)
		}
	}
	if st.DeadLetters > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("%d dead letter(s) (jetfleet dlq ls)", st.DeadLetters))
	}
	for _, m := range st.Marts {
		if m.Err != "" {
			st.Problems = append(st.Problems, fmt.Sprintf("mart %s: %s", m.Name, m.Err))
		}
	}
	balanceProblems(st)
	st.Healthy = len(st.Problems) == 0
	var pending uint64
	for _, s := range st.Steps {
		pending += s.Pending + uint64(s.AckPending)
	}
	if st.Healthy {
		st.Headline = fmt.Sprintf("healthy: %d step(s), %d worker(s) alive, %d pending, %d dead letter(s)", len(st.Steps), alive, pending, st.DeadLetters)
		return
	}
	st.Headline = "UNHEALTHY: " + st.Problems[0]
	if n := len(st.Problems) - 1; n > 0 {
		st.Headline += fmt.Sprintf(" (+%d more)", n)
	}
}

// reconnectWindow is how long a worker's reconnect stays a note.
const reconnectWindow = 10 * time.Minute

// reconnectNotes mention live workers that reconnected to NATS lately: a
// server restarted or a cluster node died under them.
func reconnectNotes(now time.Time, ws []WorkerStatus) []string {
	var notes []string
	for _, w := range ws {
		c := w.Conn
		if w.Liveness != LivenessAlive || c == nil || c.Reconnects == 0 || c.LastReconnect.IsZero() || now.Sub(c.LastReconnect) > reconnectWindow {
			continue
		}
		notes = append(notes, fmt.Sprintf("worker %s (%s/%s) reconnected to NATS %s ago, now on %s (%d reconnect(s) since start)",
			w.ID, w.Step, w.Dataset, ago(now.Sub(c.LastReconnect)), cmp.Or(c.Server, c.URL), c.Reconnects))
	}
	return notes
}

func streamCluster(info *jetstream.StreamInfo) *StreamCluster {
	ci := info.Cluster
	if ci == nil || info.Config.Replicas <= 1 {
		return nil
	}
	c := &StreamCluster{Leader: ci.Leader, Replicas: []StreamPeer{}}
	for _, p := range ci.Replicas {
		if p == nil {
			continue
		}
		seen := p.Active
		if seen == 0 && !p.Current && ci.LeaderSince != nil {
			// Not heard from since this leader was elected (the old leader,
			// SIGKILLed): the cluster marks it offline only minutes later.
			seen = time.Since(*ci.LeaderSince)
		}
		c.Replicas = append(c.Replicas, StreamPeer{Name: p.Name, Current: p.Current, Offline: p.Offline, Lag: p.Lag, SeenAgoSec: secs(seen)})
	}
	return c
}

// streamReplicaHealth judges a replicated stream: no leader is a problem
// (no writes); a replica down or behind is worth a note, since the stream
// works while a majority of its replicas is up.
func streamReplicaHealth(ss StreamStatus) (problem, note string) {
	c := ss.Cluster
	if c == nil {
		return "", ""
	}
	if c.Leader == "" {
		return fmt.Sprintf("stream %s has no leader (a majority of its %d replicas is down, or an election is under way)", ss.Name, ss.Replicas), ""
	}
	var down, behind []string
	for _, p := range c.Replicas {
		switch {
		case p.down():
			down = append(down, p.Name)
		case !p.Current:
			behind = append(behind, p.Name)
		}
	}
	if missing := ss.Replicas - 1 - len(c.Replicas); missing > 0 {
		down = append(down, fmt.Sprintf("%d unknown", missing))
	}
	switch {
	case len(down) > 0:
		note = fmt.Sprintf("stream %s: replica(s) %s down; %d of %d up, leader %s", ss.Name, strings.Join(down, ", "), ss.Replicas-len(down), ss.Replicas, c.Leader)
	case len(behind) > 0:
		note = fmt.Sprintf("stream %s: replica(s) %s not current (catching up, or down and not yet noticed); leader %s", ss.Name, strings.Join(behind, ", "), c.Leader)
	}
	return "", note
}

// addLanding counts the landing bucket's objects still waiting for the
// ingest step. A bucket that cannot be listed is reported, not fatal: the
// rest of the status still holds.
func addLanding(ctx context.Context, js jetstream.JetStream, st *Status) {
	obs, err := js.ObjectStore(ctx, subjects.LandingBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return
	}
	if err != nil {
		st.Landing = &LandingStatus{Error: err.Error()}
		return
	}
	st.Landing = &LandingStatus{}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return
	}
	if err != nil {
		st.Landing.Error = err.Error()
		return
	}
	for _, info := range infos {
		if info.Deleted || strings.HasPrefix(info.Name, subjects.LandingDone) || strings.HasPrefix(info.Name, subjects.LandingFailed) {
			continue
		}
		st.Landing.Waiting++
		if len(st.Landing.Names) < 5 {
			st.Landing.Names = append(st.Landing.Names, info.Name)
		}
	}
}

// sumContracts adds up the contract counts of a step's workers. The
// replicas of a step in one process share one handler, so each reports
// the process's counts: they count once per process.
func sumContracts(ws []WorkerStatus) *subjects.ContractCounts {
	procs := map[string]*subjects.ContractCounts{}
	var contract string
	for _, w := range ws {
		if w.Contract == nil {
			continue
		}
		contract = w.Contract.Contract
		key := fmt.Sprintf("%s/%d", w.Host, w.PID)
		p := procs[key]
		if p == nil {
			p = &subjects.ContractCounts{Fields: map[string]int64{}}
			procs[key] = p
		}
		for f, n := range w.Contract.Fields {
			p.Fields[f] = max(p.Fields[f], n)
		}
	}
	if len(procs) == 0 {
		return nil
	}
	out := &subjects.ContractCounts{Contract: contract, Fields: map[string]int64{}}
	for _, p := range procs {
		for f, n := range p.Fields {
			out.Fields[f] += n
		}
	}
	return out
}
