package workers_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestOutputWithOwnMsgID: an output that names its own id is published as
// a message of its own with that id, also from a bulk input, while the
// other outputs of the bulk message are grouped as before. A second input
// whose outputs name the same ids adds none of them.
func TestOutputWithOwnMsgID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	handled := make(chan struct{}, 16)
	h := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		defer func() { handled <- struct{}{} }()
		return []workers.Output{
			{Subject: subjects.Valid(dataset), Data: rec.Data},
			{Subject: subjects.Alert("r"), Data: rec.Data, MsgID: fmt.Sprintf("own-%d", rec.Index)},
		}, nil
	})
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, h))
	for n := range 2 {
		b.publishChunk(t, fmt.Sprint("bulk-", n), "{\"i\":0}\n{\"i\":1}\n{\"i\":2}", 3)
		for range 3 {
			<-handled
		}
	}
	embeddedtest.WaitFor(t, 30*time.Second, "outputs", func() bool {
		return embeddedtest.StreamMsgs(t, b.js, subjects.StreamAlerts) >= 3 && embeddedtest.StreamMsgs(t, b.js, subjects.StreamValid) >= 2
	})
	s, err := b.js.Stream(t.Context(), subjects.StreamAlerts)
	require.NoError(t, err)
	for i := range 3 {
		m, err := s.GetMsg(t.Context(), uint64(i+1))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("own-%d", i), m.Header.Get(subjects.HeaderMsgID))
		require.Empty(t, m.Header.Get(subjects.HeaderRecords), "not a bulk message")
		require.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(m.Data))
	}
	require.Equal(t, uint64(3), embeddedtest.StreamMsgs(t, b.js, subjects.StreamAlerts), "the second input's own-id outputs were duplicates")
	v, err := b.js.Stream(t.Context(), subjects.StreamValid)
	require.NoError(t, err)
	m, err := v.GetMsg(t.Context(), 1)
	require.NoError(t, err)
	require.Equal(t, "3", m.Header.Get(subjects.HeaderRecords), "the other outputs still form one bulk message")
}
