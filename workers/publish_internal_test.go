package workers

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/message"
)

func TestJoinRecords(t *testing.T) {
	t.Parallel()
	body := []byte("{\"a\":0}\n{\"a\":1}\r\n{\"a\":2}\n\n{\"a\":3}\n{\"a\":4}")
	recs, _ := subjects.SplitBulk(nats.Header{subjects.HeaderRecords: {"5"}}, body)
	require.Len(t, recs, 5)

	got := joinRecords(recs[3:])
	require.Equal(t, "{\"a\":3}\n{\"a\":4}", string(got))
	require.Same(t, &body[len(body)-len(got)], &got[0], "records in order in one buffer are not copied")

	require.Equal(t, "{\"a\":0}\n{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}", string(joinRecords(recs)), "a CR and a blank line are not passed on")
	require.Equal(t, "{\"a\":0}\n{\"a\":2}", string(joinRecords([][]byte{recs[0], recs[2]})))
	require.Equal(t, "{\"a\":1}\n{\"a\":0}", string(joinRecords([][]byte{recs[1], recs[0]})))
	require.Equal(t, "x\n", string(joinRecords([][]byte{[]byte("x"), nil})))
	require.Nil(t, joinRecords(nil))
}

func TestJoinOutputs(t *testing.T) {
	t.Parallel()
	body := []byte("{\"a\":0}\n{\"a\":1}\r\n{\"a\":2}")
	lines, _ := subjects.SplitBulk(nats.Header{subjects.HeaderRecords: {"3"}}, body)
	var outs []message.Output
	for _, line := range lines {
		outs = append(outs, message.Output{Data: line})
	}
	require.Equal(t, "{\"a\":0}\n{\"a\":1}\n{\"a\":2}", string(joinOutputs(outs)), "a CR is not passed on")
	got := joinOutputs(outs[2:])
	require.Same(t, &body[len(body)-len(got)], &got[0])
	require.Equal(t, "x\n", string(joinOutputs([]message.Output{{Data: []byte("x")}, {}})))
}

// TestTransientPublishError: what the runtime publishes again (with the
// same message id) and what it gives up on at once.
func TestTransientPublishError(t *testing.T) {
	t.Parallel()
	inProcess := &jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}
	for i, tc := range []struct {
		err             error
		transient, lost bool
	}{
		{fmt.Errorf("publish: %w", inProcess), true, false}, // the only one in process
		{jetstream.ErrNoStreamResponse, true, false},
		{jetstream.ErrAsyncPublishTimeout, true, true},
		{nats.ErrDisconnected, true, true},
		{&jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum messages exceeded"}, false, false},
		{jetstream.ErrStreamNotFound, false, false},
	} {
		require.Equal(t, tc.transient, transientPublishError(tc.err), "%v", tc.err)
		require.Equal(t, tc.lost, PublishOutcomeUnknown(tc.err), "%v", tc.err)
		require.Equal(t, i == 0, MsgIDInProcess(tc.err), "%v", tc.err)
	}
}
