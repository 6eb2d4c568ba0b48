package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

// Trace gives each delivery that produced outputs the traceparent they
// carry (W3C Trace Context): a child span of the delivery's own trace,
// so a trace travels end to end, one span per hop. Dead letters keep the
// delivery's own traceparent.
func Trace() message.Middleware {
	return func(next message.HandlerFunc) message.HandlerFunc {
		return func(ctx context.Context, b *message.Batch) error {
			err := next(ctx, b)
			for _, d := range b.Deliveries {
				if len(d.Outputs) > 0 {
					d.TraceParent = ChildTraceParent(d.Msg.Headers().Get(subjects.HeaderTraceParent), d.ID)
				}
			}
			return err
		}
	}
}

// ChildTraceParent continues the W3C trace of parent with a span derived
// from the input's id, or starts a trace derived from it when parent is
// missing or malformed, so that a redelivery carries the same trace.
func ChildTraceParent(parent, inID string) string {
	sum := sha256.Sum256([]byte(inID))
	var b [55]byte
	if len(parent) == 55 && parent[2] == '-' && parent[35] == '-' && parent[52] == '-' {
		copy(b[:36], parent[:36])
		hex.Encode(b[36:52], sum[16:24])
		copy(b[52:], parent[52:])
		return string(b[:])
	}
	copy(b[:3], "00-")
	hex.Encode(b[3:35], sum[:16])
	b[35] = '-'
	hex.Encode(b[36:52], sum[16:24])
	copy(b[52:], "-01")
	return string(b[:])
}
