package bench

import (
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

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
	// Events is how many generated orders are published. Required.
	Events int
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
	if c.Version == "" {
		c.Version = "bench"
	}
}

func (c *Config) validate() error {
	switch {
	case c.Mode != ModeRecord && c.Mode != ModeBulk:
		return fmt.Errorf("%w: mode %q, want record or bulk", ErrInvalidConfig, c.Mode)
	case c.Events <= 0:
		return fmt.Errorf("%w: events %d, want > 0", ErrInvalidConfig, c.Events)
	case c.InvalidShare < 0 || c.DuplicateShare < 0 || c.InvalidShare+c.DuplicateShare >= 1:
		return fmt.Errorf("%w: invalid share %g and duplicate share %g must be >= 0 and sum below 1", ErrInvalidConfig, c.InvalidShare, c.DuplicateShare)
	case c.DataDir == "":
		return fmt.Errorf("%w: no data dir", ErrInvalidConfig)
	}
	return nil
}
