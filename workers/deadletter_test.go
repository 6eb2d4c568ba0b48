package workers_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// storedSize is what a stored message counts against the max payload:
// its headers as the client encodes them, and its body.
func storedSize(m *jetstream.RawStreamMsg) int64 {
	nm := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
	return int64(nm.Size() - len(nm.Subject))
}

// publishFull publishes body with id so that headers and body fill the
// server's max payload exactly, padding body with 'x'. It returns the body.
func (b *testBundle) publishFull(t *testing.T, subject, id string, head []byte, header nats.Header) []byte {
	t.Helper()
	m := &nats.Msg{Subject: subject, Header: header}
	m.Header.Set(subjects.HeaderMsgID, id)
	room := int(b.nc.MaxPayload()) - (m.Size() - len(subject))
	m.Data = append(head, bytes.Repeat([]byte{'x'}, room-len(head))...) //nolint:gocritic // a new body from head, head is not used again
	_, err := b.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	return m.Data
}

// readMsg reads the message at seq of stream through a consumer: the
// stream get API takes seconds under -race for a message near the max
// payload (it answers in base64 in JSON).
func (b *testBundle) readMsg(t *testing.T, stream string, seq uint64) *jetstream.RawStreamMsg {
	t.Helper()
	cons, err := b.js.OrderedConsumer(t.Context(), stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seq})
	require.NoError(t, err)
	m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
	require.NoError(t, err)
	meta, err := m.Metadata()
	require.NoError(t, err)
	require.Equal(t, seq, meta.Sequence.Stream)
	return &jetstream.RawStreamMsg{Subject: m.Subject(), Sequence: seq, Header: m.Headers(), Data: m.Data()}
}

// requireTruncated checks a dead letter that could not hold its whole
// record: it fits, says it is cut and from what size, keeps the head of
// the record and where the whole record is.
func requireTruncated(t *testing.T, b *testBundle, dl *jetstream.RawStreamMsg, record []byte) {
	t.Helper()
	require.LessOrEqual(t, storedSize(dl), b.nc.MaxPayload())
	require.Equal(t, "true", dl.Header.Get(subjects.HeaderTruncated))
	require.Equal(t, strconv.Itoa(len(record)), dl.Header.Get(subjects.HeaderOrigSize))
	require.Less(t, len(dl.Data), len(record))
	require.Greater(t, len(dl.Data), len(record)-4096, "keeps what fits, not a token prefix")
	require.Equal(t, record[:len(dl.Data)], dl.Data)
	require.Equal(t, subjects.StreamIngest, dl.Header.Get(subjects.HeaderOrigStream))
	require.NotEmpty(t, dl.Header.Get(subjects.HeaderOrigSeq))
	require.NotEmpty(t, dl.Header.Get(subjects.HeaderReason))
}

// A record that fills the max payload is dead-lettered all the same: the
// dead-letter headers push it over the limit, so its body is cut to what
// fits and marked (before, the publish failed with "maximum payload
// exceeded" until the record ran out of deliveries, and the supervisor's
// copy failed the same way: it was in no stream, mart or dead letter).
func TestDeadLetterOfARecordAtTheLimitIsTruncatedToFit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	reject := workers.HandlerFunc(func(context.Context, workers.Record) ([]workers.Output, error) {
		return nil, workers.Permanentf("not a JSON object")
	})
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, reject))

	record := b.publishFull(t, subjects.Ingest(dataset), "big-1", []byte("not json "), nats.Header{})
	embeddedtest.WaitFor(t, 30*time.Second, "the dead letter", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 1 })
	dl := b.readMsg(t, subjects.StreamDLQ, 1)
	requireTruncated(t, b, dl, record)
	require.Equal(t, "1", dl.Header.Get(subjects.HeaderOrigSeq))
	require.Equal(t, "not a JSON object", dl.Header.Get(subjects.HeaderReason))

	// A small dead letter is not touched.
	b.publish(t, subjects.Ingest(dataset), 1, "small-")
	embeddedtest.WaitFor(t, 30*time.Second, "the second dead letter", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 2 })
	dl = b.readMsg(t, subjects.StreamDLQ, 2)
	require.Empty(t, dl.Header.Get(subjects.HeaderTruncated))
	require.Empty(t, dl.Header.Get(subjects.HeaderOrigSize))
	require.JSONEq(t, `{"i":0}`, string(dl.Data))
}

// Bulk chunks at the limit: a huge bad record of a chunk is dead-lettered
// on its own, truncated, beside a small one that is not; a chunk that
// runs out of deliveries is dead-lettered whole, truncated, and keeps
// its record count so the books still add up.
func TestDeadLettersOfBulkChunksAtTheLimitFit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	h := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if bytes.HasPrefix(rec.Data, []byte("transient")) {
			return nil, errors.New("warehouse db unavailable")
		}
		return nil, workers.Permanentf("record %d rejected", rec.Index)
	})
	workertest.StartWorker(t, b.fastConfig(t, subjects.StepValidate, h))

	// One after the other: a transient failure fails the handler's whole batch.
	perRecord := b.publishFull(t, subjects.Ingest(dataset), "chunk-1", []byte("small\n"), nats.Header{subjects.HeaderRecords: {"2"}})
	embeddedtest.WaitFor(t, 30*time.Second, "two dead letters", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 2 })
	whole := b.publishFull(t, subjects.Ingest(dataset), "chunk-2", []byte("transient\n"), nats.Header{subjects.HeaderRecords: {"2"}})
	embeddedtest.WaitFor(t, 30*time.Second, "three dead letters", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 3 })

	var small, huge, all *jetstream.RawStreamMsg
	for seq := uint64(1); seq <= 3; seq++ {
		m := b.readMsg(t, subjects.StreamDLQ, seq)
		switch {
		case m.Header.Get(subjects.HeaderRecordIndex) == "0":
			small = m
		case m.Header.Get(subjects.HeaderRecordIndex) == "1":
			huge = m
		default:
			all = m
		}
	}
	require.NotNil(t, small)
	require.Equal(t, "small", string(small.Data))
	require.Empty(t, small.Header.Get(subjects.HeaderTruncated))

	require.NotNil(t, huge)
	requireTruncated(t, b, huge, perRecord[len("small\n"):])

	require.NotNil(t, all)
	requireTruncated(t, b, all, whole)
	require.Equal(t, "2", all.Header.Get(subjects.HeaderRecords))
	require.Contains(t, all.Header.Get(subjects.HeaderReason), "warehouse db unavailable")
}

// Outputs JetStream refuses on every delivery are a transient failure like
// a handler's (docs/wire.md, step 5): on the last allowed delivery the
// message is dead-lettered whole, a bulk one with its record count, and
// terminated, rather than nak'ed once more and left to the supervisor's
// copy.
func TestDeadLettersWholeWhenOutputsRefusedAtMaxDeliver(t *testing.T) {
	t.Parallel()
	b := setup(t)
	cfg := b.fastConfig(t, subjects.StepValidate, workers.Passthrough(subjects.Valid(dataset)))
	cfg.RepublishFor = 50 * time.Millisecond
	w := workertest.StartWorker(t, cfg)
	require.NoError(t, b.js.DeleteStream(t.Context(), subjects.StreamValid)) // the worker's start made it

	b.publish(t, subjects.Ingest(dataset), 1, "one-")
	const chunk = "{\"i\":1}\n\n{\"i\":2}\n"
	b.publishChunk(t, "chunk-1", chunk, 2)
	embeddedtest.WaitFor(t, 30*time.Second, "two dead letters", func() bool { return embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ) == 2 })

	for seq := uint64(1); seq <= 2; seq++ {
		dl := b.readMsg(t, subjects.StreamDLQ, seq)
		require.Contains(t, dl.Header.Get(subjects.HeaderReason), "gave up after 3 deliveries: ")
		require.Contains(t, dl.Header.Get(subjects.HeaderReason), "no response from stream")
		require.Equal(t, "3", dl.Header.Get(subjects.HeaderDeliveries))
		index := 0 // a message of one record: its record's dead letter
		if dl.Header.Get(subjects.HeaderOrigMsgID) == "chunk-1" {
			index = subjects.WholeMessage
		}
		require.Equal(t, subjects.DeadLetterMsgID(dl.Header.Get(subjects.HeaderOrigMsgID), "validate", index), dl.Header.Get(subjects.HeaderMsgID))
		if dl.Header.Get(subjects.HeaderOrigMsgID) == "chunk-1" {
			require.Equal(t, "2", dl.Header.Get(subjects.HeaderRecords))
			require.Equal(t, chunk, string(dl.Data))
		}
	}
	embeddedtest.WaitFor(t, 30*time.Second, "both terminated", func() bool { return w.Snapshot().Counters.Acked == 2 })
	require.Equal(t, int64(3), w.Snapshot().Counters.DeadLettered)
	c, err := b.js.Consumer(t.Context(), subjects.StreamIngest, subjects.ConsumerName("validate", dataset))
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 30*time.Second, "the ack floor past both", func() bool {
		info, err := c.Info(t.Context())
		return err == nil && info.AckFloor.Stream == 2 && info.NumAckPending == 0
	})
}

// A chunk whose first record was dead-lettered on its own and whose other
// records' outputs are refused to the last delivery is dead-lettered whole
// under an id of its own: under record 0's, the server would drop it as a
// duplicate and the other records would reach neither a stream nor the
// dead letters.
func TestWholeDeadLetterOfAChunkIsNotItsFirstRecords(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rejectFirst := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if rec.Index == 0 {
			return nil, workers.Permanentf("record 0 is bad")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	cfg := b.fastConfig(t, subjects.StepValidate, rejectFirst)
	cfg.RepublishFor = 50 * time.Millisecond
	w := workertest.StartWorker(t, cfg)
	require.NoError(t, b.js.DeleteStream(t.Context(), subjects.StreamValid)) // the good record's output is refused

	b.publishChunk(t, "chunk-2", "{\"i\":\"bad\"}\n{\"i\":\"good\"}\n", 2)
	embeddedtest.WaitFor(t, 30*time.Second, "the chunk terminated", func() bool { return w.Snapshot().Counters.Acked == 1 })

	dls := embeddedtest.ReadStream(t, b.js, subjects.StreamDLQ)
	ids := map[string][]byte{}
	for _, dl := range dls {
		ids[dl.Header.Get(subjects.HeaderMsgID)] = dl.Data
	}
	require.Len(t, dls, 2, "record 0's dead letter and the whole chunk's")
	require.Equal(t, []byte(`{"i":"bad"}`), ids[subjects.DeadLetterMsgID("chunk-2", "validate", 0)])
	// Each record dead-lettered once: the whole chunk's dead letter holds
	// the records without one of their own.
	whole := dls[slices.IndexFunc(dls, func(m *jetstream.RawStreamMsg) bool {
		return m.Header.Get(subjects.HeaderMsgID) == subjects.DeadLetterMsgID("chunk-2", "validate", subjects.WholeMessage)
	})]
	require.Equal(t, "{\"i\":\"good\"}\n", string(whole.Data), "the good record is in the dead letters, the bad one only once")
	require.Equal(t, "1", whole.Header.Get(subjects.HeaderRecords))
	require.Contains(t, whole.Header.Get(subjects.HeaderReason), "1 of its records dead-lettered on their own")
	records := 0
	for _, dl := range dls {
		n, err := strconv.Atoi(dl.Header.Get(subjects.HeaderRecords))
		if err != nil {
			n = 1 // a single record's dead letter
		}
		records += n
	}
	require.Equal(t, 2, records, "the chunk's two records, each dead-lettered once")
}
