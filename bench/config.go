package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/workers/fleet"
)

// Progress is what a run has done so far, for a progress bar.
type Progress struct {
	Phase     string // "publishing" or "draining"
	Elapsed   time.Duration
	Target    int64 // records to publish, 0 when the run is timed
	Duration  time.Duration
	Published int64
	Committed int64
	// Lag is messages not yet handled, summed over the steps.
	Lag uint64
}

// Mode is how records travel on the wire.
type Mode string

// Modes of a run.
const (
	// ModeRecord publishes one record per message, Nats-Msg-Id = order_id.
	ModeRecord Mode = "record"
	// ModeBulk publishes NDJSON chunks of BulkSize records (Jf-Records).
	ModeBulk Mode = "bulk"
)

// Config configures one [Run]. Field names map 1:1 to `jetfleet bench`
// flags.
type Config struct {
	Mode Mode
	// Events is how many generated orders are published; Duration
	// publishes for that long instead. One of them is required; with
	// both, whichever ends first.
	Events   int
	Duration time.Duration
	// Rate, when above 0, publishes open loop at this many records/s
	// (latency runs, soak runs); 0 publishes as fast as the server takes
	// records (throughput runs).
	Rate float64
	// Workers sets replicas per step ("validate": 2); default 1 each.
	Workers map[string]int
	// BulkSize is records per message in bulk mode. Default 100.
	BulkSize int
	// Seed, InvalidShare and DuplicateShare drive the order generator.
	// Seed 0 means 1.
	Seed                         uint64
	InvalidShare, DuplicateShare float64
	// NatsURL runs against an existing server; empty starts an embedded
	// one with its store under DataDir.
	NatsURL string
	// DataDir holds the aggregator's state and marts (and the embedded
	// server's store). Required; it must not hold marts yet.
	DataDir string
	// MemoryLimit is the aggregator's DuckDB memory limit. Default 1GB.
	MemoryLimit string
	// Timeout bounds the wait for the fleet to drain. Default 10m.
	Timeout time.Duration
	// SampleEvery is how often the fleet's consumers and memory are
	// sampled for per-step rates, progress and the soak report. Default
	// 250ms (1s for runs of a minute or more).
	SampleEvery time.Duration
	// ProgressFunc, if set, gets every sample while the run publishes and
	// drains (for a progress bar).
	ProgressFunc func(Progress)
	// CPUProfile, when set, is where a CPU profile of the fleet run (from
	// the first publish to idle) is written.
	CPUProfile string
	// MemProfile, when set, is where a Go heap profile is written when
	// publishing ends: what the workers and the embedded server hold
	// under the load.
	MemProfile string
	// Version is reported in worker heartbeats.
	Version string
	Logger  zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.Mode == "" {
		c.Mode = ModeRecord
	}
	if c.BulkSize <= 0 {
		c.BulkSize = 100
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "1GB"
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 250 * time.Millisecond
		if c.Duration >= time.Minute {
			c.SampleEvery = time.Second
		}
	}
	if c.Version == "" {
		c.Version = "bench"
	}
}

func (c *Config) validate() error {
	switch {
	case c.Mode != ModeRecord && c.Mode != ModeBulk:
		return fmt.Errorf("%w: mode %q, want record or bulk", ErrInvalidConfig, c.Mode)
	case c.Events < 0 || c.Duration < 0 || c.Events == 0 && c.Duration == 0:
		return fmt.Errorf("%w: want events > 0 or a duration > 0 (events %d, duration %s)", ErrInvalidConfig, c.Events, c.Duration)
	case c.Rate < 0:
		return fmt.Errorf("%w: rate %g, want >= 0", ErrInvalidConfig, c.Rate)
	case c.InvalidShare < 0 || c.DuplicateShare < 0 || c.InvalidShare+c.DuplicateShare >= 1:
		return fmt.Errorf("%w: invalid share %g and duplicate share %g must be >= 0 and sum below 1", ErrInvalidConfig, c.InvalidShare, c.DuplicateShare)
	case c.DataDir == "":
		return fmt.Errorf("%w: no data dir", ErrInvalidConfig)
	}
	for step, n := range c.Workers {
		switch {
		case !slices.Contains(fleet.StepNames(nil), step):
			return fmt.Errorf("%w: workers: unknown step %q (steps: %s)", ErrInvalidConfig, step, strings.Join(fleet.StepNames(nil), ", "))
		case n < 1:
			return fmt.Errorf("%w: workers: %s=%d, want at least 1", ErrInvalidConfig, step, n)
		}
	}
	return nil
}
