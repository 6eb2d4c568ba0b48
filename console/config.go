package console

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/supervisor"
)

// Config configures [New].
type Config struct {
	// JS reads the fleet and replays dead letters. Required.
	JS jetstream.JetStream
	// Conn sends control requests (pause, resume, drain). Required.
	Conn *nats.Conn
	// Snapshot are the options of every status read (marts, progress,
	// the in-process tree), as /status uses them.
	Snapshot []supervisor.SnapshotOption
	// Spec, if known, names the alert rules and their cooldowns.
	Spec *pipeline.Spec
	// DataDir holds the marts the query box reads; empty: no query box.
	DataDir string
	// MemoryLimit is the query engine's DuckDB memory limit.
	MemoryLimit string
	// MaxQueries caps queries at a time; default 2.
	MaxQueries int
	// QueryTimeout bounds one query; default 30s.
	QueryTimeout time.Duration
	// Write allows replay, pause, resume and drain. Off by default: the
	// page then shows them and the server refuses them.
	Write bool
	// SampleEvery is how often the history of rates and lag is sampled;
	// default 5s. The history keeps 15 minutes.
	SampleEvery time.Duration
	Logger      zerolog.Logger
}

func (c *Config) setDefaults() {
	if c.MaxQueries <= 0 {
		c.MaxQueries = 2
	}
	if c.QueryTimeout <= 0 {
		c.QueryTimeout = 30 * time.Second
	}
	if c.SampleEvery <= 0 {
		c.SampleEvery = 5 * time.Second
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "256MB"
	}
}

func (c *Config) validate() error {
	if c.JS == nil {
		return fmt.Errorf("%w: no JetStream", ErrInvalidConfig)
	}
	if c.Conn == nil {
		return fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	return nil
}
