package subjects

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// JetStream advisories the supervisor listens to: a message that reached
// its consumer's MaxDeliver, and a message a client terminated. The
// consumer's stream and name follow the prefix.
const (
	AdvisoryMaxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>"
	AdvisoryTerminated    = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.>"
)

// TermReasonDeadLettered starts the Term reason of a message a worker has
// dead-lettered itself; the supervisor does not copy those again.
const TermReasonDeadLettered = "jf: dead-lettered: "

// StageStreams are the streams a step consumes from, in pipeline order.
var StageStreams = []string{StreamIngest, StreamValid, StreamClean, StreamAlerts}

// DeadLetterFilter is the subject filter for the dead letters of step on
// dataset; an empty step or dataset matches any.
func DeadLetterFilter(step, dataset string) string {
	if step == "" {
		step = "*"
	}
	if dataset == "" {
		dataset = "*"
	}
	return join(Root, string(KindDLQ), step, dataset)
}

// StreamAdvisories keeps the max-deliveries and terminated advisories of
// the stage streams' consumers, so that a supervisor that was down finds
// the ones published meanwhile (core NATS would have dropped them): the
// supervisors read it with the durable [ConsumerAdvisories] and ack an
// advisory once its message is dead-lettered (or needs no dead letter).
const StreamAdvisories = "JF_ADVISORIES"

// ConsumerAdvisories is the durable consumer on [StreamAdvisories] that
// every supervisor shares: one of them handles each advisory.
const ConsumerAdvisories = "supervisor"

// AdvisorySubjects are what [StreamAdvisories] captures: the two
// advisories of the consumers of each stage stream, and no others (not
// those of its own consumer).
func AdvisorySubjects() []string {
	var out []string
	for _, prefix := range []string{AdvisoryMaxDeliveries, AdvisoryTerminated} {
		for _, s := range StageStreams {
			out = append(out, strings.TrimSuffix(prefix, ">")+s+".>")
		}
	}
	return out
}

// advisoriesStream is the configuration of [StreamAdvisories]. Its limits
// do not follow the stage options (every process ensures it, and options
// differ between them): a week, like the stage streams by default, after
// which the original message has usually expired too.
func advisoriesStream(o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamAdvisories,
		Description: "jetfleet: max-deliveries and terminated advisories of the stage consumers, for the supervisor",
		Subjects:    AdvisorySubjects(),
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		MaxAge:      7 * 24 * time.Hour,
		Duplicates:  2 * time.Minute,
		Discard:     jetstream.DiscardOld,
	}
}

// AdvisoriesConsumer is the durable pull consumer the supervisors share on
// [StreamAdvisories]. Deliveries are unlimited: an advisory whose dead
// letter cannot be written yet is retried (with backoff) until it can.
func AdvisoriesConsumer() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerAdvisories,
		Description:   "jetfleet supervisors: dead-letter what JetStream gave up on",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		MaxAckPending: 256,
	}
}

// EnsureAdvisories creates [StreamAdvisories] (or checks it) and returns
// the supervisors' durable consumer on it.
func EnsureAdvisories(ctx context.Context, js jetstream.JetStream, o StreamOptions) (jetstream.Consumer, error) {
	if err := CheckServer(js.Conn()); err != nil {
		return nil, err
	}
	anyReplicas := o.Replicas == 0
	bindOnly := o.BindOnly
	o.setDefaults()
	if _, err := ensureStream(ctx, js, advisoriesStream(o), anyReplicas, false, bindOnly); err != nil {
		return nil, err
	}
	if bindOnly {
		return BindConsumer(ctx, js, StreamAdvisories, AdvisoriesConsumer())
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamAdvisories, AdvisoriesConsumer())
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", ConsumerAdvisories, StreamAdvisories, err)
	}
	return cons, nil
}
