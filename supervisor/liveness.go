package supervisor

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

// staleAfter is how long a worker beating every interval may be silent
// before it is stale.
func (s *Supervisor) staleAfter(interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return time.Duration(s.cfg.StaleBeats) * interval
}

// deadAfter is the TTL of a worker's key: DeadAfter, but at least one
// beat past the stale time.
func (s *Supervisor) deadAfter(interval time.Duration) time.Duration {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return max(s.cfg.DeadAfter, s.staleAfter(interval)+interval)
}

// onBeat folds one heartbeat into the fleet bucket.
func (s *Supervisor) onBeat(ctx context.Context, data []byte, now time.Time) {
	var b subjects.Beat
	if err := json.Unmarshal(data, &b); err != nil {
		s.log.Debug().Err(err).Msg("undecodable heartbeat")
		return
	}
	if subjects.ValidateToken("worker", b.Worker) != nil || subjects.ValidateToken("step", b.Step) != nil {
		return
	}
	s.metrics.beats.Inc()
	interval := time.Duration(b.IntervalMS) * time.Millisecond
	key := b.Step + "." + b.Worker
	consumer := b.Consumer
	if consumer == "" {
		consumer = subjects.ConsumerName(b.Step, b.Dataset)
	}
	rec := WorkerStatus{
		ID: b.Worker, Step: b.Step, Dataset: b.Dataset, Consumer: consumer, Host: b.Host, PID: b.PID,
		Version: b.Version, State: b.State, Liveness: LivenessAlive, Started: b.Started, LastBeat: now.UTC(),
		InFlight: b.InFlight, Counters: b.Counters, LastErr: b.LastErr, IntervalMS: b.IntervalMS, Waiting: b.Waiting,
		StaleAfterMS: s.staleAfter(interval).Milliseconds(), DeadAfterMS: s.deadAfter(interval).Milliseconds(),
		Conn: b.Conn, Contract: b.Contract,
	}

	s.mu.Lock()
	prev := s.workers[key]
	from := ""
	if prev != nil {
		from = prev.Liveness
	}
	if b.LastErr != "" && (s.lastErr[consumer].err != b.LastErr || s.lastErr[consumer].worker != b.Worker) {
		s.lastErr[consumer] = errNote{err: b.LastErr, worker: b.Worker, at: now}
	}
	s.trackRate(key, consumer, b, now)
	if b.State == subjects.StateStopped {
		delete(s.workers, key)
		delete(s.acked, key)
	} else {
		s.workers[key] = &rec
	}
	s.mu.Unlock()

	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if b.State == subjects.StateStopped {
		rec.Liveness = LivenessStopped
		if err := putTTL(wctx, s.js, subjects.KeyGone(b.Step, b.Worker), rec, s.cfg.GoneRetention); err != nil {
			s.log.Warn().Err(err).Msg("record stopped worker")
		}
		if err := s.kv.Delete(wctx, subjects.KeyWorker(b.Step, b.Worker)); err != nil {
			s.log.Debug().Err(err).Msg("remove stopped worker")
		}
		s.transition(rec, from, LivenessStopped)
		return
	}
	if err := putTTL(wctx, s.js, subjects.KeyWorker(b.Step, b.Worker), rec, s.deadAfter(interval)); err != nil {
		s.log.Warn().Err(err).Str("worker", b.Worker).Msg("record heartbeat")
	}
	if from != LivenessAlive {
		if from == LivenessDead || from == "" {
			// A worker back from the dead (or a new one reusing an id)
			// is no longer listed as gone.
			_ = s.kv.Delete(wctx, subjects.KeyGone(b.Step, b.Worker))
		}
		s.transition(rec, from, LivenessAlive)
	}
}

// sweep judges every known worker by the age of its last beat.
func (s *Supervisor) sweep(ctx context.Context, now time.Time) {
	type change struct {
		rec      WorkerStatus
		from, to string
	}
	var changes []change
	s.mu.Lock()
	for key, w := range s.workers {
		to := livenessAt(*w, now)
		if to == w.Liveness {
			continue
		}
		changes = append(changes, change{*w, w.Liveness, to})
		w.Liveness = to
		if to == LivenessDead {
			delete(s.workers, key)
			delete(s.acked, key)
		}
	}
	s.mu.Unlock()
	for _, c := range changes {
		c.rec.Liveness = c.to
		if c.to == LivenessDead {
			wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := putTTL(wctx, s.js, subjects.KeyGone(c.rec.Step, c.rec.ID), c.rec, s.cfg.GoneRetention); err != nil {
				s.log.Warn().Err(err).Msg("record dead worker")
			}
			_ = s.kv.Delete(wctx, subjects.KeyWorker(c.rec.Step, c.rec.ID))
			cancel()
		}
		s.transition(c.rec, c.from, c.to)
	}
}

// transition logs a liveness change and publishes it on jf.sup.events.
func (s *Supervisor) transition(w WorkerStatus, from, to string) {
	s.metrics.transitions.WithLabelValues(to).Inc()
	ev := s.log.Info()
	if from == "" && to == LivenessAlive {
		ev = s.log.Debug() // a worker's first beat: one line per worker at every start
	}
	if to == LivenessStale || to == LivenessDead {
		ev = s.log.Warn()
	}
	fromLog := from
	if fromLog == "" {
		fromLog = "new"
	}
	ev.Str("worker", w.ID).Str("step", w.Step).Str("dataset", w.Dataset).Str("host", w.Host).
		Str("from", fromLog).Str("to", to).Time("last_beat", w.LastBeat).Msg("worker " + to)
	s.publishEvent(Event{Kind: EventWorker, Step: w.Step, Dataset: w.Dataset, Worker: w.ID, From: from, To: to})
}
