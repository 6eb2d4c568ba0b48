package bench

import (
	"context"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/internal/nativemem"
	"github.com/jetfleet/jetfleet/subjects"
)

// Sample is the fleet seen at one moment of a run: what each step has
// acked and still holds, and the process's memory. A soak run's report
// draws these over time.
type Sample struct {
	// At is seconds since the first publish.
	At float64 `json:"at_s"`
	// Published is records published so far.
	Published int64 `json:"published"`
	// Committed is records the aggregator has committed so far.
	Committed int64 `json:"committed"`
	// Steps holds, per step in pipeline order, messages acked so far (the
	// consumer's ack floor moved over) and the step's lag: messages not
	// yet delivered plus delivered and not yet acked.
	Steps []StepSample `json:"steps"`
	// RSSBytes is the process's resident set now; FileBytes the part of it
	// that maps files (the binary's code and data, which the OS can drop
	// and read again), the rest being anonymous memory.
	RSSBytes  int64 `json:"rss_bytes"`
	FileBytes int64 `json:"file_bytes,omitempty"`
	// GoBytes is the part of it the Go runtime holds (heap, stacks and
	// runtime structures, less what it returned to the OS): the workers
	// and, embedded, nats-server. The rest is native, mostly DuckDB.
	GoBytes int64 `json:"go_bytes"`
	// DuckDBBytes is what the aggregators' DuckDB states account for
	// (duckdb_memory()): native memory beyond it is the allocator's.
	DuckDBBytes int64 `json:"duckdb_bytes"`
	// DuckDBAllocatedBytes is what every DuckDB in the process has
	// allocated from its allocator (jemalloc), buffer-managed or not: the
	// states, the mart builder's, queries' operators. DuckDBResidentBytes
	// is that allocator's resident pages: allocated plus fragmentation and
	// freed pages not yet returned to the OS. Both are 0 where DuckDB is
	// built without jemalloc.
	DuckDBAllocatedBytes int64 `json:"duckdb_allocated_bytes,omitempty"`
	DuckDBResidentBytes  int64 `json:"duckdb_resident_bytes,omitempty"`
	// MallocInUseBytes and MallocFreeBytes are the libc's malloc heap
	// (glibc): C and C++ allocations outside DuckDB's allocator (DuckDB's
	// containers, catalog and strings among them), and what its free lists
	// keep. 0 where the libc does not report them.
	MallocInUseBytes int64 `json:"malloc_in_use_bytes,omitempty"`
	MallocFreeBytes  int64 `json:"malloc_free_bytes,omitempty"`
}

// StepSample is one step's consumer at one moment.
type StepSample struct {
	Acked uint64 `json:"acked"`
	Lag   uint64 `json:"lag"`
}

// sampler polls the step consumers while the fleet runs. Its samples
// feed per-step rates, the progress bar and the soak report.
type sampler struct {
	js            jetstream.JetStream
	dataset       string
	start         time.Time
	every         time.Duration
	consumers     []sampledConsumer
	publishedFunc func() int64
	committedFunc func() int64
	duckdbFunc    func(context.Context) int64
	onSampleFunc  func(Sample)

	mu      sync.Mutex
	samples []Sample
	// done[i] is when step i's ack floor last moved: its last ack.
	done []time.Time
	last []uint64
}

// sampledConsumer is one consumer of a step: the aggregate step has one
// per partition of the clean stage, whose acks add up.
type sampledConsumer struct {
	stream, name string
	step         int
	// partition consumers count acked messages by consumer sequence: the
	// stream sequences of partitions interleave.
	partition bool
	base      uint64 // ack floor before the run
}

func (c sampledConsumer) floor(info *jetstream.ConsumerInfo) uint64 {
	if c.partition {
		return info.AckFloor.Consumer
	}
	return info.AckFloor.Stream
}

func newSampler(js jetstream.JetStream, dataset string, before []*jetstream.ConsumerInfo, every time.Duration) *sampler {
	s := &sampler{js: js, dataset: dataset, every: every}
	steps := stepConsumers()
	for _, info := range before {
		c := sampledConsumer{stream: info.Stream, name: info.Name, partition: info.Config.Metadata[subjects.MetaPartition] != ""}
		for i, sc := range steps {
			if sc.stream == info.Stream {
				c.step = i
			}
		}
		c.base = c.floor(info)
		s.consumers = append(s.consumers, c)
	}
	s.done = make([]time.Time, len(steps))
	s.last = make([]uint64, len(steps))
	return s
}

// run samples until ctx is done, then once more.
func (s *sampler) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sample(ctx)
		}
	}
}

func (s *sampler) sample(ctx context.Context) {
	now := time.Now()
	smp := Sample{At: now.Sub(s.start).Seconds(), GoBytes: goMemory()}
	smp.RSSBytes, smp.FileBytes = currentRSS()
	native := nativemem.Read()
	smp.DuckDBAllocatedBytes, smp.DuckDBResidentBytes = native.DuckDBAllocated, native.DuckDBResident
	smp.MallocInUseBytes, smp.MallocFreeBytes = native.LibcInUse, native.LibcFree
	if s.publishedFunc != nil {
		smp.Published = s.publishedFunc()
	}
	if s.committedFunc != nil {
		smp.Committed = s.committedFunc()
	}
	if s.duckdbFunc != nil {
		smp.DuckDBBytes = s.duckdbFunc(ctx)
	}
	smp.Steps = make([]StepSample, len(s.last))
	for _, sc := range s.consumers {
		c, err := s.js.Consumer(ctx, sc.stream, sc.name)
		if err != nil {
			return // stopping, or a consumer gone: skip this sample
		}
		// Looking the consumer up fetched its info: no second request.
		info := c.CachedInfo()
		floor := sc.floor(info)
		smp.Steps[sc.step].Acked += floor - min(sc.base, floor)
		smp.Steps[sc.step].Lag += info.NumPending + uint64(info.NumAckPending)
	}
	s.mu.Lock()
	for i, st := range smp.Steps {
		if st.Acked > s.last[i] {
			s.last[i], s.done[i] = st.Acked, now
		}
	}
	s.mu.Unlock()
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
	if s.onSampleFunc != nil {
		s.onSampleFunc(smp)
	}
}

// finished is when each step last acked, and the samples so far.
func (s *sampler) finished() ([]time.Time, []Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.done...), append([]Sample(nil), s.samples...)
}

var goMemoryMetrics = []metrics.Sample{
	{Name: "/memory/classes/total:bytes"},
	{Name: "/memory/classes/heap/released:bytes"},
}

// goMemory is the memory the Go runtime has mapped and not released.
func goMemory() int64 {
	ms := make([]metrics.Sample, len(goMemoryMetrics))
	copy(ms, goMemoryMetrics)
	metrics.Read(ms)
	return int64(ms[0].Value.Uint64() - ms[1].Value.Uint64())
}
