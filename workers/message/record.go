package message

import (
	"time"

	"github.com/nats-io/nats.go"
)

// Record is one record handed to a handler.
type Record struct {
	// Data is the record as published: normally one JSON object, but it may
	// be anything a client sent (malformed JSON, invalid UTF-8).
	Data []byte
	// Subject is the subject of the message the record came in.
	Subject string
	// Header is the message's header, shared by every record of a bulk
	// message. Read only.
	Header nats.Header
	// Index is the record's position in a bulk message, 0 in record mode.
	Index int
	// Bulk says the record came in a bulk message.
	Bulk bool
	// Seq is the stream sequence of the message.
	Seq uint64
	// MsgID is the message's id: its Nats-Msg-Id, or stream:sequence.
	MsgID string
	// Delivered counts deliveries of the message, 1 the first time.
	Delivered uint64
	// Published is when the server stored the message.
	Published time.Time
}

// Output is one record a handler produces for Subject.
type Output struct {
	Subject string
	Data    []byte
	// Group, when set, chunks outputs of a bulk input by it instead of by
	// subject; the chunk goes to the subject of its first output. The
	// transform step groups by key partition, so a bulk chunk stays whole
	// per partition while each record's subject carries its own key.
	Group string
	// MsgID, when set, is the output's Nats-Msg-Id instead of the one
	// derived from its position, and the output is always published as a
	// message of its own (also in bulk mode): for outputs, such as alerts,
	// whose id must not depend on what else the input produced.
	MsgID string
}

// Reject is a record of a batch that can never succeed; it is
// dead-lettered with Err as the reason.
type Reject struct {
	Index int // index into the batch
	Err   error
}
