package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Latency is publish-to-commit latency over the run's committed records,
// from an HDR histogram (3 significant digits).
type Latency struct {
	Count int64   `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P90Ms float64 `json:"p90_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Buckets is the distribution for pictures: records per latency
	// range, log-spaced.
	Buckets []LatencyBucket `json:"buckets,omitempty"`
	// Streams is the part up to the clean stream storing the record (the
	// three persisted hops with validate and transform), Aggregate the
	// part from there to the commit: where a tail comes from.
	Streams   *LatencySplit `json:"streams,omitempty"`
	Aggregate *LatencySplit `json:"aggregate,omitempty"`
}

// LatencySplit is one part of the latency.
type LatencySplit struct {
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

// LatencyBucket counts records whose latency is at most UpToMs (and above
// the previous bucket's bound).
type LatencyBucket struct {
	UpToMs float64 `json:"up_to_ms"`
	Count  int64   `json:"count"`
}

const (
	latencyMinUs = 1
	latencyMaxUs = int64(time.Hour / time.Microsecond)
	sentChunk    = 1 << 16
)

// latencyRecorder notes when each message was (meant to be) sent and,
// through the aggregator's commit hook, when its records were committed.
// An open-loop run notes the scheduled send time, so a stalled publisher
// cannot hide latency (coordinated omission).
type latencyRecorder struct {
	runTag uint64

	mu        sync.Mutex
	sent      [][]int64 // unix nanos by message index, in chunks
	hist      *hdrhistogram.Histogram
	streams   *hdrhistogram.Histogram // sent to stored in the clean stream
	aggregate *hdrhistogram.Histogram // stored in the clean stream to commit
	committed int64                   // records committed, for progress
	lastAt    time.Time
}

func newLatencyRecorder(runTag uint64) *latencyRecorder {
	h := func() *hdrhistogram.Histogram { return hdrhistogram.New(latencyMinUs, latencyMaxUs, 3) }
	return &latencyRecorder{runTag: runTag, hist: h(), streams: h(), aggregate: h()}
}

func (l *latencyRecorder) noteSent(index int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := int(index / sentChunk)
	for len(l.sent) <= c {
		l.sent = append(l.sent, make([]int64, sentChunk))
	}
	l.sent[c][index%sentChunk] = at.UnixNano()
}

// committedBatch is the aggregator's commit hook.
func (l *latencyRecorder) committedBatch(batch []workers.Record) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.committed += int64(len(batch))
	l.lastAt = now
	for _, r := range batch {
		i, ok := traceIndex(l.runTag, r.Header.Get(subjects.HeaderTraceParent))
		if !ok || int(i/sentChunk) >= len(l.sent) {
			continue
		}
		sent := l.sent[i/sentChunk][i%sentChunk]
		if sent == 0 {
			continue
		}
		record(l.hist, now.UnixNano()-sent)
		if !r.Published.IsZero() {
			// The server's clock: with --nats a remote one, so clamped.
			stored := min(max(r.Published.UnixNano(), sent), now.UnixNano())
			record(l.streams, stored-sent)
			record(l.aggregate, now.UnixNano()-stored)
		}
	}
}

func record(h *hdrhistogram.Histogram, ns int64) {
	us := max(ns, 0) / int64(time.Microsecond)
	_ = h.RecordValue(min(max(us, latencyMinUs), latencyMaxUs))
}

// lastCommit is when the aggregator last committed a batch.
func (l *latencyRecorder) lastCommit() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastAt
}

func (l *latencyRecorder) committedRecords() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.committed
}

func (l *latencyRecorder) result() Latency {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	out := Latency{
		Count: l.hist.TotalCount(),
		P50Ms: ms(l.hist.ValueAtQuantile(50)), P90Ms: ms(l.hist.ValueAtQuantile(90)),
		P99Ms: ms(l.hist.ValueAtQuantile(99)), MaxMs: ms(l.hist.Max()),
	}
	if out.Count == 0 {
		return out
	}
	split := func(h *hdrhistogram.Histogram) *LatencySplit {
		if h.TotalCount() == 0 {
			return nil
		}
		return &LatencySplit{P50Ms: ms(h.ValueAtQuantile(50)), P99Ms: ms(h.ValueAtQuantile(99)), MaxMs: ms(h.Max())}
	}
	out.Streams, out.Aggregate = split(l.streams), split(l.aggregate)
	// Four buckets per power of ten, from 0.1 ms to the max.
	var prev int64
	for bound := 100.0; ; bound *= 1.7782794 {
		upTo := int64(bound)
		n := countBetween(l.hist, prev, upTo)
		out.Buckets = append(out.Buckets, LatencyBucket{UpToMs: ms(upTo), Count: n})
		prev = upTo
		if upTo >= l.hist.Max() {
			break
		}
	}
	return out
}

// countBetween counts recorded values in (lo, hi] microseconds.
func countBetween(h *hdrhistogram.Histogram, lo, hi int64) int64 {
	var n int64
	for _, b := range h.Distribution() {
		if b.Count == 0 {
			continue
		}
		// A bar's range is [From, To]; attribute it by its upper end.
		if b.To > lo && b.To <= hi {
			n += b.Count
		}
	}
	return n
}
