package subjects

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Step names a pipeline step and the stages it reads and writes.
type Step struct {
	Name   string
	Input  Kind // the stage it consumes
	Output Kind // the stage it publishes to; "" for sinks
}

// The built-in steps. A record travels ingest -> validate -> transform ->
// aggregate/alert; Ingest is the landing-zone step that publishes into the
// ingest stage from files and object store uploads.
var (
	StepIngest    = Step{Name: "ingest", Output: KindIngest}
	StepValidate  = Step{Name: "validate", Input: KindIngest, Output: KindValid}
	StepTransform = Step{Name: "transform", Input: KindValid, Output: KindClean}
	StepAggregate = Step{Name: "aggregate", Input: KindClean}
	StepAlert     = Step{Name: "alert", Input: KindClean, Output: KindAlert}
	// StepRekey gives clean records published without a key token
	// (jf.clean.<dataset>) their token; aggregator processes run it. It is
	// the only consumer of the bare subject.
	StepRekey = Step{Name: "rekey", Input: KindClean, Output: KindClean}
)

// StepByName finds a built-in step.
func StepByName(name string) (Step, bool) {
	for _, s := range []Step{StepIngest, StepValidate, StepTransform, StepAggregate, StepAlert, StepWebhook, StepRekey} {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// InputSubject is the subject step consumes for dataset.
func (s Step) InputSubject(dataset string) string { return join(Root, string(s.Input), dataset) }

// OutputSubject is the subject step publishes dataset's records to.
func (s Step) OutputSubject(dataset string) string { return join(Root, string(s.Output), dataset) }

// ConsumerName is the durable consumer shared by every replica of step for
// dataset: "<step>_<dataset>". Step names hold no '_', so the name splits
// back unambiguously with [ParseConsumerName].
func ConsumerName(step, dataset string) string { return step + "_" + dataset }

// ParseConsumerName is the inverse of [ConsumerName] and, for steps that
// consume the clean stage, of [PartitionConsumerName]: the partition
// suffix _p<k> is not part of the dataset.
func ParseConsumerName(name string) (step, dataset string, ok bool) {
	step, dataset, ok = strings.Cut(name, "_")
	if s, known := StepByName(step); known && s.Input == KindClean {
		if i := strings.LastIndex(dataset, "_p"); i > 0 {
			if p, err := strconv.Atoi(dataset[i+2:]); err == nil && p >= 0 && strconv.Itoa(p) == dataset[i+2:] {
				dataset = dataset[:i]
			}
		}
	}
	return step, dataset, ok && step != "" && dataset != ""
}

// Metadata keys set on every consumer jetfleet creates.
const (
	MetaStep    = "jf.step"
	MetaDataset = "jf.dataset"
)

// ConsumerOptions are the per-step delivery settings.
type ConsumerOptions struct {
	// AckWait is how long the server waits for an ack before redelivering.
	// Default 30s. Handlers run with a deadline below it.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one message; it is always finite so a
	// poison message ends in the dead-letter stream. Default 5.
	MaxDeliver int
	// MaxAckPending bounds messages in flight per consumer, across all
	// replicas: the memory bound of a step. Default 1024.
	MaxAckPending int
}

func (o *ConsumerOptions) setDefaults() {
	if o.AckWait <= 0 {
		o.AckWait = 30 * time.Second
	}
	if o.MaxDeliver <= 0 {
		o.MaxDeliver = 5
	}
	if o.MaxAckPending <= 0 {
		o.MaxAckPending = 1024
	}
}

// Consumer is the durable pull consumer definition for step on dataset.
func Consumer(step Step, dataset string, o ConsumerOptions) (jetstream.ConsumerConfig, error) {
	if step.Input == "" {
		return jetstream.ConsumerConfig{}, fmt.Errorf("%w: step %s consumes nothing", ErrInvalidToken, step.Name)
	}
	if err := ValidateToken("dataset", dataset); err != nil {
		return jetstream.ConsumerConfig{}, err
	}
	o.setDefaults()
	name := ConsumerName(step.Name, dataset)
	cfg := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   fmt.Sprintf("jetfleet %s step for dataset %s", step.Name, dataset),
		FilterSubject: step.InputSubject(dataset),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       o.AckWait,
		MaxDeliver:    o.MaxDeliver,
		MaxAckPending: o.MaxAckPending,
		MaxWaiting:    512,
		Metadata:      map[string]string{MetaStep: step.Name, MetaDataset: dataset},
	}
	if step.Input == KindClean && step != StepRekey {
		// Every partition. Records published without a key token are the
		// rekey step's (its filter is the bare subject), which publishes
		// them again with their token.
		cfg.FilterSubject = join(Clean(dataset), ">")
	}
	return cfg, nil
}
