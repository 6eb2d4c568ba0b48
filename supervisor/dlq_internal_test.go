package supervisor

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

// A replay at the max payload sheds headers, informational ones first,
// and keeps Jf-Records (the books count a bulk message by it).
func TestFitReplay(t *testing.T) {
	t.Parallel()
	replay := func(body int) *nats.Msg {
		m := &nats.Msg{Subject: "jf.ingest.orders", Data: bytes.Repeat([]byte("x"), body), Header: nats.Header{}}
		m.Header.Set(subjects.HeaderMsgID, subjects.ReplayMsgID(7))
		m.Header.Set(subjects.HeaderReplayOf, "7")
		m.Header.Set(subjects.HeaderReplayedFrom, "JF_INGEST:3")
		m.Header.Set(subjects.HeaderTraceParent, "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01")
		m.Header.Set(subjects.HeaderRecords, "2")
		return m
	}
	const limit = 1000
	headerOnly := func(keys ...string) int {
		m := &nats.Msg{Header: nats.Header{}}
		for _, k := range keys {
			m.Header[k] = replay(0).Header[k]
		}
		return m.Size()
	}

	m := replay(100)
	require.NoError(t, fitReplay(m, limit))
	require.Len(t, m.Header, 5, "fits: untouched")

	m = replay(limit - headerOnly(subjects.HeaderMsgID, subjects.HeaderRecords, subjects.HeaderTraceParent))
	require.NoError(t, fitReplay(m, limit))
	require.Equal(t, subjects.ReplayMsgID(7), m.Header.Get(subjects.HeaderMsgID))
	require.Equal(t, "2", m.Header.Get(subjects.HeaderRecords))
	require.NotEmpty(t, m.Header.Get(subjects.HeaderTraceParent), "the trace goes only when needed")
	require.Empty(t, m.Header.Get(subjects.HeaderReplayOf))

	m = replay(limit - headerOnly(subjects.HeaderRecords))
	require.NoError(t, fitReplay(m, limit))
	require.Empty(t, m.Header.Get(subjects.HeaderMsgID), "the replay id goes last")
	require.Equal(t, "2", m.Header.Get(subjects.HeaderRecords))

	m = replay(limit)
	require.ErrorContains(t, fitReplay(m, limit), "exceed the server's max payload (1000)")
}
