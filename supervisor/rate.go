package supervisor

import (
	"context"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

// Throughput, as status shows it (ACKED/MIN, per_minute): the messages a
// consumer's workers acked (or terminated) within the last RateWindow,
// and the records they handled or dead-lettered in that time. The
// supervisor adds up the rise of each worker's cumulative counters from
// one heartbeat to the next, so an ack counts at the first beat after
// it: the window's edges are as sharp as the beat interval. Nothing is
// extrapolated: while the supervisor has watched for less than the
// window, the figure covers that shorter span (rateRecord.WindowSec).

// rateTracker is one consumer's acks and records as counted so far, with
// the samples of the last window.
type rateTracker struct {
	acked, records int64
	samples        []rateSample
}

type rateSample struct {
	at             time.Time
	acked, records int64
}

// rateBase is a worker's counters as of its last beat.
type rateBase struct{ acked, records int64 }

// trackRate adds what a worker's counters rose since its last beat to its
// consumer. A worker's first beat counts its whole counters only when the
// worker started after this supervisor did (comparing uptimes, each on
// its own clock): otherwise they include acks from before the supervisor
// watched, at unknown times, and become the baseline. Caller holds mu.
func (s *Supervisor) trackRate(key, consumer string, b subjects.Beat, now time.Time) {
	cur := rateBase{acked: b.Counters.Acked, records: b.Counters.Records + b.Counters.DeadLettered}
	last, seen := s.acked[key]
	s.acked[key] = cur
	var delta rateBase
	switch {
	case seen && cur.acked >= last.acked && cur.records >= last.records:
		delta = rateBase{cur.acked - last.acked, cur.records - last.records}
	case b.Time.IsZero() || b.Started.IsZero():
		// No uptime to judge by: a baseline.
	case b.Time.Sub(b.Started) <= now.Sub(s.started):
		delta = cur // the worker's whole life was watched (or it restarted its counters)
	}
	r := s.rates[consumer]
	if r == nil {
		r = &rateTracker{samples: []rateSample{{at: s.started}}}
		s.rates[consumer] = r
	}
	r.acked += delta.acked
	r.records += delta.records
	r.samples = append(r.samples, rateSample{now, r.acked, r.records})
	cut := 0
	for cut < len(r.samples)-1 && now.Sub(r.samples[cut+1].at) >= s.cfg.RateWindow {
		cut++
	}
	r.samples = r.samples[cut:]
}

// rate is what the tracker counted in the window before now, and the span
// that covers (shorter than the window while the supervisor is young).
// Caller holds mu.
func (r *rateTracker) rate(now time.Time, window time.Duration) rateRecord {
	if len(r.samples) == 0 {
		return rateRecord{At: now.UTC()}
	}
	cutoff := now.Add(-window)
	base := r.samples[0]
	for _, x := range r.samples {
		if !x.at.After(cutoff) {
			base = x
		}
	}
	span := min(now.Sub(base.at), window)
	return rateRecord{PerMinute: r.acked - base.acked, RecordsPerMinute: r.records - base.records, WindowSec: secs(span), At: now.UTC()}
}

// rateRecord is a consumer's throughput as the supervisor measured it,
// the value of rate.<consumer> in the fleet bucket.
type rateRecord struct {
	// PerMinute is messages acked or terminated in the window.
	PerMinute int64 `json:"per_minute"`
	// RecordsPerMinute is records handled or dead-lettered in it.
	RecordsPerMinute int64 `json:"records_per_minute"`
	// WindowSec is the span counted: the window, or less while the
	// supervisor has not watched that long.
	WindowSec float64   `json:"window_s"`
	At        time.Time `json:"at"`
}

func (s *Supervisor) writeRates(ctx context.Context, now time.Time) {
	s.mu.Lock()
	recs := make(map[string]rateRecord, len(s.rates))
	for c, r := range s.rates {
		recs[c] = r.rate(now, s.cfg.RateWindow)
	}
	s.mu.Unlock()
	for c, r := range recs {
		if err := putTTL(ctx, s.js, subjects.KeyRate(c), r, 2*s.cfg.RateWindow); err != nil {
			s.log.Debug().Err(err).Msg("write rate")
		}
	}
}
