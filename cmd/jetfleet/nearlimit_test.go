package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

// nearLimitDoc is the part of `status --json` and `dlq ls --json` this
// test reads.
type nearLimitDoc struct {
	Healthy bool `json:"healthy"`
	Balance []struct {
		Dataset      string `json:"dataset"`
		State        string `json:"state"`
		Published    int64  `json:"published"`
		Clean        int64  `json:"clean"`
		DeadLettered int64  `json:"dead_lettered"`
		Duplicates   int64  `json:"duplicates"`
		Unaccounted  int64  `json:"unaccounted"`
	} `json:"balance"`
}

type nearLimitLetter struct {
	Seq         uint64 `json:"seq"`
	Step        string `json:"step"`
	OrigSeq     uint64 `json:"orig_seq"`
	OrigMsgID   string `json:"orig_msg_id"`
	RecordIndex int    `json:"record_index"`
	Reason      string `json:"reason"`
	Truncated   bool   `json:"truncated"`
	OrigSize    int    `json:"orig_size"`
}

// TestNearLimitRecordsAreAllAccounted sends records at and near the dev
// server's 8 MiB max payload, of every kind, with a plain NATS client:
// an invalid order padded to the limit, a non-JSON body of 8,388,408
// bytes (issue 16), a valid order with a huge field that fits the
// pipeline's headers and one that fills the limit (its validated copy
// cannot be published), and a bulk chunk at the limit with a valid
// order and a huge invalid one. Every record ends in the marts or in a
// dead letter, the big dead letters truncated and marked; the books
// balance; `status --wait-idle` exits 0; `dlq show` explains a truncated
// letter and `dlq replay` sends its whole record from JF_INGEST (the bad
// line alone for a chunk's record), and refuses once the original is gone.
// Before dead letters were cut to fit, four of these were in no stream,
// mart or dead letter (wait-idle: "4 record(s) unaccounted").
func TestNearLimitRecordsAreAllAccounted(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir())
	maxPayload := 8 << 20

	// full pads an order's customer_id so that the message, its headers
	// included, is size bytes.
	full := func(id, amount string, size int, header nats.Header) *nats.Msg {
		m := &nats.Msg{Subject: subjects.Ingest("orders"), Header: header}
		m.Header.Set(subjects.HeaderMsgID, id)
		order := func(customer string) string {
			return fmt.Sprintf(`{"order_id":%q,"customer_id":%q,"amount":%s,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`, id, customer, amount)
		}
		m.Data = []byte(order(""))
		pad := size - (m.Size() - len(m.Subject))
		m.Data = []byte(order(strings.Repeat("c", pad)))
		return m
	}
	invalid := full("n-invalid", "-1", maxPayload, nats.Header{})
	nonJSON := &nats.Msg{Subject: subjects.Ingest("orders"), Header: nats.Header{}, Data: []byte(strings.Repeat("not json ", 8_388_408/9) + "!!!")}
	nonJSON.Header.Set(subjects.HeaderMsgID, "n-nonjson")
	require.Len(t, nonJSON.Data, 8_388_408)
	validFits := full("n-valid-fits", "10", maxPayload-4096, nats.Header{})
	validFull := full("n-valid-full", "10", maxPayload, nats.Header{})
	small := shopOrder("n-bulk-ok", "c-bulk")
	bulk := full("n-bulk-bad", "-1", maxPayload, nats.Header{subjects.HeaderRecords: {"2"}})
	bulk.Header.Set(subjects.HeaderMsgID, "n-bulk")
	bulk.Data = []byte(small + "\n" + string(bulk.Data[:len(bulk.Data)-len(small)-1]))

	for _, m := range []*nats.Msg{invalid, nonJSON, validFits, validFull, bulk} {
		require.LessOrEqual(t, m.Size()-len(m.Subject), maxPayload)
		_, err := dev.js.PublishMsg(t.Context(), m)
		require.NoError(t, err, m.Header.Get(subjects.HeaderMsgID))
	}

	out, code := jf(t, dev.env, "status", "--wait-idle", "240s")
	require.Zero(t, code, out)

	out, code = jf(t, dev.env, "status", "--json")
	require.Zero(t, code, out)
	var doc nearLimitDoc
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	require.Len(t, doc.Balance, 1, out)
	b := doc.Balance[0]
	require.Equal(t, "balanced", b.State, out)
	require.Equal(t, [5]int64{6, 2, 4, 0, 0}, [5]int64{b.Published, b.Clean, b.DeadLettered, b.Duplicates, b.Unaccounted},
		"published, clean, dead-lettered, duplicates, unaccounted")

	out, code = jf(t, dev.env, "dlq", "ls", "--json")
	require.Zero(t, code, out)
	var letters []nearLimitLetter
	require.NoError(t, json.Unmarshal([]byte(out), &letters), out)
	byID := map[string]nearLimitLetter{}
	for _, l := range letters {
		byID[l.OrigMsgID] = l
	}
	require.Len(t, byID, 4, out)
	for id, size := range map[string]int{
		"n-invalid": len(invalid.Data), "n-nonjson": len(nonJSON.Data),
		"n-valid-full": len(validFull.Data), "n-bulk": len(bulk.Data) - len(small) - 1,
	} {
		l, ok := byID[id]
		require.True(t, ok, "dead letter of %s in %s", id, out)
		require.True(t, l.Truncated, "%s is truncated", id)
		require.Equal(t, size, l.OrigSize, "%s: size of the whole record", id)
	}
	require.Equal(t, 1, byID["n-bulk"].RecordIndex, "the bad record of the chunk, alone")
	// Its validated copy never fit: on its last delivery the validate
	// worker dead-lettered it whole, saying why.
	require.Contains(t, byID["n-valid-full"].Reason, "gave up after 5 deliveries")
	require.Contains(t, byID["n-valid-full"].Reason, "maximum payload exceeded")
	out, code = jf(t, dev.env, "dlq", "ls")
	require.Zero(t, code, out)
	require.Contains(t, out, "[truncated, 8388408 bytes]")

	out, code = jf(t, nil, "query", "--data-dir", dev.dataDir, "--format", "csv",
		"SELECT order_id, length(customer_id) AS len FROM orders ORDER BY order_id")
	require.Zero(t, code, out)
	require.Equal(t, fmt.Sprintf("order_id,len\nn-bulk-ok,6\nn-valid-fits,%d\n", len(validFits.Data)-len(shopOrder("n-valid-fits", ""))), out)

	// show explains the truncated non-JSON letter; replay sends it whole.
	seq := fmt.Sprint(byID["n-nonjson"].Seq)
	out, code = jf(t, dev.env, "dlq", "show", seq)
	require.Zero(t, code, out[:min(len(out), 2000)])
	require.Regexp(t, `(?m)^truncated:  body truncated to \d+ of 8388408 bytes to fit the server's max payload; the whole record is JF_INGEST seq \d+, still retained \(jetfleet dlq replay --seq `+seq+` sends it whole\)$`, out[:2000])
	require.True(t, strings.HasSuffix(out, "still retained (jetfleet dlq replay --seq "+seq+" sends it whole))\n"), "repeated below the body")

	// Replay sends the whole records: the non-JSON body, and the huge bad
	// line of the chunk on its own (not the chunk).
	bulkSeq := fmt.Sprint(byID["n-bulk"].Seq)
	out, code = jf(t, dev.env, "dlq", "replay", "--seq", seq, "--seq", bulkSeq)
	require.Zero(t, code, out)
	require.Contains(t, out, "replayed 2,")
	ingest, err := dev.js.Stream(t.Context(), subjects.StreamIngest)
	require.NoError(t, err)
	// Read through a consumer: the stream get API is slow for messages
	// this size (it answers in base64 in JSON).
	lastSeq := ingest.CachedInfo().State.LastSeq
	cons, err := ingest.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: lastSeq - 1})
	require.NoError(t, err)
	replayed := map[string]jetstream.Msg{}
	for range 2 {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		replayed[m.Headers().Get(subjects.HeaderMsgID)] = m
	}
	again := replayed[subjects.ReplayMsgID(byID["n-nonjson"].Seq)]
	require.NotNil(t, again, "replay of the non-JSON letter")
	require.Len(t, again.Data(), len(nonJSON.Data), "the whole record, not the truncated head")
	line := replayed[subjects.ReplayMsgID(byID["n-bulk"].Seq)]
	require.NotNil(t, line, "replay of the chunk's bad record")
	require.Len(t, line.Data(), len(bulk.Data)-len(small)-1, "the whole bad line")
	require.Empty(t, line.Headers().Get(subjects.HeaderRecords), "a record on its own, not the chunk")

	// Both fail validation again, and the books still balance.
	out, code = jf(t, dev.env, "status", "--wait-idle", "120s")
	require.Zero(t, code, out)
	out, code = jf(t, dev.env, "status", "--json")
	require.Zero(t, code, out)
	doc = nearLimitDoc{}
	require.NoError(t, json.Unmarshal([]byte(out), &doc), out)
	b = doc.Balance[0]
	require.Equal(t, "balanced", b.State, out)
	require.Equal(t, [3]int64{8, 2, 6}, [3]int64{b.Published, b.Clean, b.DeadLettered})

	// Once the original has left its stream, show says so and replay
	// refuses rather than send the head alone.
	require.NoError(t, ingest.DeleteMsg(t.Context(), byID["n-nonjson"].OrigSeq))
	out, code = jf(t, dev.env, "dlq", "show", seq)
	require.Zero(t, code, out[:min(len(out), 2000)])
	require.Contains(t, out[:2000], fmt.Sprintf("the whole record (JF_INGEST seq %d) is no longer retained: only this head is left", byID["n-nonjson"].OrigSeq))
	out, code = jf(t, dev.env, "dlq", "replay", "--seq", seq, "--force")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, fmt.Sprintf("original no longer retained: JF_INGEST seq %d has left the stream", byID["n-nonjson"].OrigSeq))
	require.Contains(t, out, "so it is not replayed")
	info, err := ingest.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, lastSeq, info.State.LastSeq, "nothing sent")
}
