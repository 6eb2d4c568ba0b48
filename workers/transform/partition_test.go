package transform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// TestBulkChunksStayInTheirPartition: a bulk input of many keys becomes
// one clean chunk per partition, each stored in the partition of every
// key it carries, so a partition's aggregator sees all of its keys.
func TestBulkChunksStayInTheirPartition(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	ds := &pipeline.Dataset{Name: "orders", Key: "order_id"}
	th, err := transform.New(ds, nil)
	require.NoError(t, err)
	startWorker(t, nc, subjects.StepTransform, th)

	const records = 60
	var body bytes.Buffer
	for i := range records {
		fmt.Fprintf(&body, `{"order_id":"o-%d","amount":%d}`+"\n", i, i)
	}
	m := nats.NewMsg(subjects.Valid("orders"))
	m.Data = body.Bytes()
	m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
	m.Header.Set(subjects.HeaderMsgID, "bulk-1")
	_, err = js.PublishMsg(ctx, m)
	require.NoError(t, err)

	chunks := embeddedtest.WaitStream(t, js, subjects.StreamClean, subjects.DefaultPartitions, 10*time.Second)
	total := 0
	seenPartition := map[int]bool{}
	for _, c := range chunks {
		p, err := subjects.Parse(c.Subject)
		require.NoError(t, err)
		require.True(t, p.Partitioned, c.Subject)
		require.False(t, seenPartition[p.Partition], "one chunk per partition")
		seenPartition[p.Partition] = true
		lines := strings.Split(strings.TrimSpace(string(c.Data)), "\n")
		require.Equal(t, strconv.Itoa(len(lines)), c.Header.Get(subjects.HeaderRecords))
		for _, line := range lines {
			var rec struct {
				OrderID string `json:"order_id"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			require.Equal(t, p.Partition, subjects.PartitionOf(subjects.KeyToken(rec.OrderID), subjects.DefaultPartitions), "record %s in chunk %s", rec.OrderID, c.Subject)
			total++
		}
	}
	require.Equal(t, records, total)
}

func TestKeyOf(t *testing.T) {
	t.Parallel()
	rec, err := pipeline.DecodeRecord([]byte(`{"s":"a<b","n":12.50,"b":true,"z":null}`))
	require.NoError(t, err)
	require.Equal(t, "a<b", transform.KeyOf(rec, "s"))
	require.Equal(t, "12.50", transform.KeyOf(rec, "n"), "a number keeps its JSON text, as the aggregator reads it")
	require.Equal(t, "true", transform.KeyOf(rec, "b"))
	require.Empty(t, transform.KeyOf(rec, "z"))
	require.Empty(t, transform.KeyOf(rec, "missing"))
}
