package workers

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// Config configures one [Worker]: one step on one dataset.
type Config struct {
	// Conn is the NATS connection. Required.
	Conn *nats.Conn
	// Step is the step this worker runs; it must consume a stage. Required.
	Step subjects.Step
	// Dataset is the dataset the worker serves. Required.
	Dataset string
	// NewHandlerFunc builds the handler; it is called again after a crash,
	// so a handler never runs with the state a panic left behind. One of
	// NewHandlerFunc and NewBatchHandlerFunc is required.
	NewHandlerFunc func() (Handler, error)
	// NewBatchHandlerFunc builds a batch handler, for sinks.
	NewBatchHandlerFunc func() (BatchHandler, error)
	// Middleware wraps the handler inside the runtime's own middleware
	// (trace, retry, recover, metrics, timeout), first outermost: for a
	// concern of the step's own, such as a rate limit.
	Middleware []message.Middleware
	// BatchWait is how long a batch handler's worker gathers messages into
	// a batch once it holds one: the batch goes to the handler when full
	// (FetchBatch) or BatchWait after its first message. Default 5ms.
	BatchWait time.Duration
	// ID names this worker in heartbeats and logs. Default: host and a
	// random suffix.
	ID string
	// Version is reported in heartbeats.
	Version string
	// Logger gets the worker's structured log lines.
	Logger zerolog.Logger
	// QuietStart logs "worker started" at debug instead of info: a fleet
	// in one process (jetfleet dev) starts a dozen at once and says it once.
	QuietStart bool

	// Partitions, when above 0, makes the worker consume only partition
	// Partition (of Partitions) of its clean-stage input, through that
	// partition's durable consumer (see subjects.PartitionConsumer).
	Partition  int
	Partitions int

	// Consumer tunes delivery (AckWait, MaxDeliver, MaxAckPending).
	Consumer subjects.ConsumerOptions
	// Streams is passed to subjects.Ensure at start-up.
	Streams subjects.StreamOptions
	// FilterSubjects, when set, are the subjects the consumer reads instead
	// of the step's input subject for Dataset (a webhook deliverer reads
	// the alerts of the rules that name its target).
	FilterSubjects []string

	// FetchBatch is how many messages one pull asks for. Default 256.
	FetchBatch int
	// HandlerTimeout bounds the handling of one message. Default 80% of
	// AckWait, so JetStream does not redeliver work still in progress.
	HandlerTimeout time.Duration
	// RetryBackoffMin and RetryBackoffMax bound the redelivery delay of a
	// transient failure, which doubles per delivery. Default 500ms, 30s.
	RetryBackoffMin time.Duration
	RetryBackoffMax time.Duration
	// RestartBackoffMin and RestartBackoffMax bound the pause before a
	// crashed handler is rebuilt. Default 100ms, 5s.
	RestartBackoffMin time.Duration
	RestartBackoffMax time.Duration
	// MaxRestarts crashes within RestartWindow stop the worker with
	// ErrTooManyRestarts. Default 20 in 1 minute.
	MaxRestarts   int
	RestartWindow time.Duration
	// DrainTimeout bounds the graceful part of a stop; then handlers are
	// cancelled. Default 4s.
	DrainTimeout time.Duration
	// HeartbeatInterval is how often the worker beats. Default 5s.
	HeartbeatInterval time.Duration
	// ConnectRetryMax caps the backoff between attempts to reach JetStream
	// at start-up. Default 10s.
	ConnectRetryMax time.Duration
	// PullHeartbeat is how often the server confirms a waiting pull. Two
	// missed confirmations make the worker pull again: that is how it
	// finds a consumer whose leader died with a cluster node. Default 2s;
	// 500ms to 30s.
	PullHeartbeat time.Duration
	// PublishTimeout bounds the wait for JetStream to acknowledge an
	// output; past it the input is nak'ed and redelivered (the outputs are
	// de-duplicated). Without it a publish lost in a leader election would
	// stall the worker. Default 10s, at most HandlerTimeout.
	PublishTimeout time.Duration
	// RepublishFor is how long an output the cluster did not take (no
	// stream leader during an election, a lost publish) is published
	// again before the input is nak'ed. Default AckWait.
	RepublishFor time.Duration
	// WaitFunc, if set, holds the worker back before it consumes anything
	// until what its handler needs is there (a transform's lookup tables):
	// it returns nil once the handler can work, or ctx's error. While it
	// blocks, the worker is bound but holds no message, beats with state
	// waiting and the reason last passed to waitingFunc, and Waiting returns
	// that reason.
	WaitFunc func(ctx context.Context, waitingFunc func(reason string)) error
}

func (c *Config) setDefaults() {
	c.Consumer = withConsumerDefaults(c.Consumer)
	if c.ID == "" {
		c.ID = NewWorkerID()
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 5 * time.Millisecond
	}
	if c.FetchBatch <= 0 {
		c.FetchBatch = 256
	}
	if c.FetchBatch > c.Consumer.MaxAckPending {
		c.FetchBatch = c.Consumer.MaxAckPending
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = c.Consumer.AckWait * 8 / 10
	}
	if c.RetryBackoffMin <= 0 {
		c.RetryBackoffMin = 500 * time.Millisecond
	}
	if c.RetryBackoffMax <= 0 {
		c.RetryBackoffMax = 30 * time.Second
	}
	if c.RestartBackoffMin <= 0 {
		c.RestartBackoffMin = 100 * time.Millisecond
	}
	if c.RestartBackoffMax <= 0 {
		c.RestartBackoffMax = 5 * time.Second
	}
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 20
	}
	if c.RestartWindow <= 0 {
		c.RestartWindow = time.Minute
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 4 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.ConnectRetryMax <= 0 {
		c.ConnectRetryMax = 10 * time.Second
	}
	if c.PullHeartbeat <= 0 {
		c.PullHeartbeat = 2 * time.Second
	}
	c.PullHeartbeat = min(max(c.PullHeartbeat, 500*time.Millisecond), 30*time.Second) // the client's allowed range
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 10 * time.Second
	}
	c.PublishTimeout = min(c.PublishTimeout, c.HandlerTimeout)
	if c.RepublishFor <= 0 {
		c.RepublishFor = c.Consumer.AckWait
	}
}

func (c *Config) validate() error {
	if c.Conn == nil {
		return fmt.Errorf("%w: no NATS connection", ErrInvalidConfig)
	}
	if c.Step.Name == "" || c.Step.Input == "" {
		return fmt.Errorf("%w: step %q consumes no stage", ErrInvalidConfig, c.Step.Name)
	}
	if err := subjects.ValidateToken("dataset", c.Dataset); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if err := subjects.ValidateToken("worker", c.ID); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if (c.NewHandlerFunc == nil) == (c.NewBatchHandlerFunc == nil) {
		return fmt.Errorf("%w: set exactly one of NewHandlerFunc and NewBatchHandlerFunc", ErrInvalidConfig)
	}
	if c.Partitions > 0 {
		if _, err := c.consumerConfig(); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	if c.HandlerTimeout >= c.Consumer.AckWait {
		return fmt.Errorf("%w: handler timeout %s must be below AckWait %s", ErrInvalidConfig, c.HandlerTimeout, c.Consumer.AckWait)
	}
	return nil
}

func (c *Config) consumerName() string {
	if c.Partitions > 0 {
		return subjects.PartitionConsumerName(c.Step.Name, c.Dataset, c.Partition)
	}
	return subjects.ConsumerName(c.Step.Name, c.Dataset)
}

func (c *Config) consumerConfig() (jetstream.ConsumerConfig, error) {
	if c.Partitions > 0 {
		return subjects.PartitionConsumer(c.Step, c.Dataset, c.Partition, c.Partitions, c.Consumer)
	}
	return subjects.Consumer(c.Step, c.Dataset, c.Consumer)
}

// withConsumerDefaults fills the consumer options the same way
// subjects.Consumer does, so the worker knows AckWait and MaxDeliver.
func withConsumerDefaults(o subjects.ConsumerOptions) subjects.ConsumerOptions {
	cfg, _ := subjects.Consumer(subjects.StepValidate, "x", o)
	return subjects.ConsumerOptions{AckWait: cfg.AckWait, MaxDeliver: cfg.MaxDeliver, MaxAckPending: cfg.MaxAckPending}
}

// NewWorkerID returns a worker id unique on this fleet: host name and a
// random suffix, usable as a subject token.
func NewWorkerID() string {
	host, _ := os.Hostname()
	host = sanitizeToken(host)
	if len(host) > 24 {
		host = host[:24]
	}
	id := nuid.Next()
	id = strings.ToLower(id[len(id)-8:])
	if host == "" {
		return "w-" + id
	}
	return host + "-" + id
}

func sanitizeToken(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-_")
}
