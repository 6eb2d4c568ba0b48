package subjects

import (
	"context"
	"net/textproto"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// maxReasonLen keeps a reason header readable and well under header limits.
const maxReasonLen = 1024

// CleanReason makes an error text safe as a header value: one line, valid
// UTF-8, bounded length.
func CleanReason(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > maxReasonLen {
		s = strings.ToValidUTF8(s[:maxReasonLen], "") + "..."
	}
	return s
}

// FitDeadLetter makes dead letter m fit in limit bytes of headers and body
// (the server's max payload, or JF_DLQ's max message size): a record
// that just fit the input stream does not fit beside the dead-letter
// headers, and a dead letter that cannot be stored would leave the
// record in no stream, mart or dead letter. A body that does not fit is
// cut (at a UTF-8 boundary, so it still prints) and marked with
// Jf-Truncated and Jf-Orig-Size; the whole original stays in
// Jf-Orig-Stream at Jf-Orig-Seq for `dlq replay`. It reports whether it
// cut the body; limit <= 0 leaves m alone.
func FitDeadLetter(m *nats.Msg, limit int64) bool {
	if limit <= 0 || int64(headerSize(m.Header)+len(m.Data)) <= limit {
		return false
	}
	full := len(m.Data)
	m.Header.Set(HeaderTruncated, "true")
	m.Header.Set(HeaderOrigSize, strconv.Itoa(full))
	room := max(int(limit)-headerSize(m.Header), 0)
	room = min(room, full)
	// Back up to the start of a rune, unless the body is not text anyway.
	for i := 0; i < utf8.UTFMax && room > 0 && room < full && !utf8.RuneStart(m.Data[room]); i++ {
		room--
	}
	m.Data = m.Data[:room:room]
	return true
}

// headerSize is what the NATS client counts for a header against the max
// payload (nats.Msg.headerSize, which is not exported).
func headerSize(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + len("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(textproto.TrimString(v)) + len(": \r\n")
		}
	}
	return n
}

// DeadLetterLimit is the largest dead letter, headers and body, that
// JF_DLQ takes: the server's max payload, or the stream's max message
// size when that is smaller.
func DeadLetterLimit(ctx context.Context, js jetstream.JetStream) int64 {
	limit := js.Conn().MaxPayload()
	if s, err := js.Stream(ctx, StreamDLQ); err == nil {
		if n := int64(s.CachedInfo().Config.MaxMsgSize); n > 0 && (limit <= 0 || n < limit) {
			limit = n
		}
	}
	return limit
}
