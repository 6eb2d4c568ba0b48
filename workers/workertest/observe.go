package workertest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// waitTimeout bounds every wait of the suite: generous, since a loaded CI
// machine runs many servers at once; a passing wait ends far sooner.
const waitTimeout = 30 * time.Second

// StoredMsgs returns the messages stream stores on subjects matching
// filter, in order.
// Unlike embeddedtest.ReadStream it returns its error, for EffectsFuncs
// polled while a stream is deleted or refilled.
func StoredMsgs(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]*jetstream.RawStreamMsg, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from %s: %w", filter, stream, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// OutputRecords is an EffectsFunc for a step that publishes: it
// counts the records stored on subjects matching filter, each record of a
// bulk message (Jf-Records) one. A missing stream holds none.
func OutputRecords(js jetstream.JetStream, filter string) func(ctx context.Context) (int, error) {
	return func(ctx context.Context) (int, error) {
		stream, err := js.StreamNameBySubject(ctx, filter)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		msgs, err := StoredMsgs(ctx, js, stream, filter)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		n := 0
		for _, m := range msgs {
			n += records(m)
		}
		return n, nil
	}
}

// records is how many records message m carries.
func records(m *jetstream.RawStreamMsg) int {
	if v := m.Header.Get(subjects.HeaderRecords); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			return n
		}
	}
	return 1
}
