package subjects

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
