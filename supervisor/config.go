package supervisor

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
)

// Config configures a [Supervisor].
type Config struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Logger gets transitions, dead letters and errors.
	Logger zerolog.Logger
	// ID names this supervisor in the fleet bucket. Default sup-<host>-<random>.
	ID string
	// Version is reported in the fleet bucket.
	Version string
	// Streams sets the replicas of the fleet bucket (and of the streams,
	// which the supervisor ensures at start-up).
	Streams subjects.StreamOptions
	// StaleBeats is how many missed heartbeats make a worker stale.
	// Default 3.
	StaleBeats int
	// DeadAfter is how long after its last heartbeat a silent worker is
	// dead: the TTL of its key in the fleet bucket. Default 30s, and
	// never less than the stale time plus one beat.
	DeadAfter time.Duration
	// GoneRetention is how long a dead or stopped worker stays listed.
	// Default 10 minutes.
	GoneRetention time.Duration
	// SweepInterval is how often liveness is re-judged. Default 1s.
	SweepInterval time.Duration
	// AnnounceInterval is how often the supervisor writes its own record
	// (and throughput, tree and marts). Default 5s.
	AnnounceInterval time.Duration
	// RateWindow is the span of the throughput in status (ACKED/MIN,
	// per_minute). Default 1 minute; tests shorten it.
	RateWindow time.Duration
	// Tree, if set, is the in-process supervision tree whose children's
	// states (a failed child) the supervisor publishes.
	Tree *Tree
	// MartsFunc, if set, reports the marts; the supervisor publishes
	// them to the fleet bucket so `jetfleet status` sees them anywhere.
	MartsFunc MartsFunc
	// ProgressFunc, if set, reports what the aggregators committed (clean
	// records and duplicates per dataset, [DirProgress]); the supervisor
	// publishes it to the fleet bucket for the books in status.
	ProgressFunc ProgressFunc
}

func (c *Config) setDefaults() {
	if c.ID == "" {
		host, _ := os.Hostname()
		if len(host) > 40 {
			host = host[:40]
		}
		id := nuid.Next()
		c.ID = sanitize("sup-" + host + "-" + strings.ToLower(id[len(id)-6:]))
	}
	if c.StaleBeats <= 0 {
		c.StaleBeats = 3
	}
	if c.DeadAfter <= 0 {
		c.DeadAfter = 30 * time.Second
	}
	if c.GoneRetention <= 0 {
		c.GoneRetention = 10 * time.Minute
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = time.Second
	}
	if c.AnnounceInterval <= 0 {
		c.AnnounceInterval = 5 * time.Second
	}
	if c.RateWindow <= 0 {
		c.RateWindow = time.Minute
	}
}

func (c *Config) validate() error {
	if c.Conn == nil {
		return fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("supervisor", c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return string(b)
}
