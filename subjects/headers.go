package subjects

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Header names of the wire contract. Nats-Msg-Id is JetStream's own
// de-duplication header; the Jf- headers are jetfleet's.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"

	// HeaderRecords marks a bulk message: its body is NDJSON with this many
	// records. A message without it holds one record.
	HeaderRecords = "Jf-Records"

	// Dead-letter headers: where the record came from and why it failed.
	HeaderOrigSubject  = "Jf-Orig-Subject"
	HeaderOrigStream   = "Jf-Orig-Stream"
	HeaderOrigSeq      = "Jf-Orig-Seq"
	HeaderOrigMsgID    = "Jf-Orig-Msg-Id"
	HeaderDeliveries   = "Jf-Deliveries"
	HeaderConsumer     = "Jf-Consumer"
	HeaderStep         = "Jf-Step"
	HeaderWorker       = "Jf-Worker"
	HeaderReason       = "Jf-Reason"
	HeaderRecordIndex  = "Jf-Record-Index"
	HeaderFailedAt     = "Jf-Failed-At"
	HeaderReplayOf     = "Jf-Replay-Of"
	HeaderReplayedFrom = "Jf-Replayed-From"

	// HeaderTruncated marks a dead letter whose body was cut to fit the
	// server's max payload beside its headers; HeaderOrigSize is then
	// the size of the body it was cut from. The whole original stays in
	// Jf-Orig-Stream at Jf-Orig-Seq while that stream retains it.
	HeaderTruncated = "Jf-Truncated"
	HeaderOrigSize  = "Jf-Orig-Size"
)

// maxMsgIDLen bounds derived ids: ids grow by a suffix per hop, and a long
// client id would otherwise make every downstream header longer.
const maxMsgIDLen = 128

// DeriveMsgID is the id a step gives to output number index (0-based, per
// input message) that it produced from an input whose id is upstream. The
// same input always yields the same ids, so an input that is redelivered
// and processed again publishes messages that JetStream drops as
// duplicates. Ids longer than 128 bytes are replaced by a SHA-256 digest.
func DeriveMsgID(upstream, step string, index int) string {
	var b strings.Builder
	b.Grow(len(upstream) + len(step) + 8)
	b.WriteString(upstream)
	b.WriteByte('/')
	b.WriteString(step)
	if index != 0 {
		b.WriteByte('#')
		b.WriteString(strconv.Itoa(index))
	}
	id := b.String()
	if len(id) > maxMsgIDLen {
		return HashID(id)
	}
	return id
}

// SequenceMsgID is the id of a stored message that was published without
// one: its stream and stream sequence, which are stable across redeliveries.
func SequenceMsgID(stream string, seq uint64) string {
	return stream + ":" + strconv.FormatUint(seq, 10)
}

// WholeMessage is the record index of a bulk message's whole-message
// dead letter (MaxDeliver reached, or outputs refused to the last).
const WholeMessage = -1

// DeadLetterMsgID is the id of the dead letter for record index of the
// input with id upstream, failed at step. Both the worker and the
// supervisor use it, so a record dead-lettered by both is stored once.
//
// A bulk message dead-lettered whole (index [WholeMessage]) gets an id of
// its own, "#all": some of its records may have been dead-lettered one by
// one on an earlier delivery, and the id of its first record's dead letter
// would have the server drop the whole message as a duplicate, and with it
// the records that never reached a stream. A message of one record
// dead-lettered whole is that record's dead letter: index 0.
func DeadLetterMsgID(upstream, step string, index int) string {
	if index < 0 {
		return DeriveMsgID(upstream, "dlq."+step+"#all", 0)
	}
	return DeriveMsgID(upstream, "dlq."+step, index)
}

// WholeDeadLetterMsgID is the id of the dead letter of a whole message:
// [WholeMessage]'s for a bulk one, its record's (index 0) for one record.
func WholeDeadLetterMsgID(upstream, step string, bulk bool) string {
	if bulk {
		return DeadLetterMsgID(upstream, step, WholeMessage)
	}
	return DeadLetterMsgID(upstream, step, 0)
}

// ReplayMsgID is the id of a dead letter replayed to its original subject.
// Replaying the same dead letter twice yields the same id.
func ReplayMsgID(dlqSeq uint64) string {
	return "replay:" + strconv.FormatUint(dlqSeq, 10)
}

// HashID turns arbitrary bytes into a fixed-length message id.
func HashID(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "h:" + hex.EncodeToString(sum[:20])
}
