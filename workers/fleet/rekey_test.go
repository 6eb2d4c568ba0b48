package fleet_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
)

// A foreign step may publish clean records without a key token
// (jf.clean.<dataset>, single records and bulk chunks). The rekey step
// gives each its token, so every record is stored in its key's partition
// and aggregated once, de-duplicated against records published with
// their token; a record that is not JSON is dead-lettered by rekey.
func TestRecordsWithoutKeyTokenReachTheirPartition(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Parse("p.yaml", []byte(`name: p
datasets:
  orders:
    key: id
    schema: [{name: id, type: VARCHAR}, {name: n, type: BIGINT}]
marts:
  totals:
    dataset: orders
    sql: SELECT count(*) AS orders, sum(n) AS n FROM orders
`))
	require.NoError(t, err)
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	dataDir := t.TempDir()
	runFleet(t, nc, spec, dataDir)

	publish := func(subject, id, body string, records int) {
		m := nats.NewMsg(subject)
		m.Data = []byte(body)
		m.Header.Set(subjects.HeaderMsgID, id)
		if records > 0 {
			m.Header.Set(subjects.HeaderRecords, fmt.Sprint(records))
		}
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	for i := range 40 {
		publish(subjects.Clean("orders"), fmt.Sprint("bare-", i), fmt.Sprintf(`{"id":"o-%d","n":1}`, i), 0)
	}
	var chunk strings.Builder
	for i := 40; i < 100; i++ {
		fmt.Fprintf(&chunk, "{\"id\":\"o-%d\",\"n\":1}\n", i)
	}
	publish(subjects.Clean("orders"), "bare-chunk", chunk.String(), 60)
	// The same key with its token: a duplicate of o-7, not a new order.
	publish(subjects.CleanKey("orders", subjects.KeyToken("o-7")), "keyed-7", `{"id":"o-7","n":1}`, 0)
	publish(subjects.Clean("orders"), "bare-junk", `not json`, 0)

	idleCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err = supervisor.WaitIdle(idleCtx, js, supervisor.WaitIdleOptions{Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(supervisor.DirMarts(dataDir))}})
	require.NoError(t, err)

	progress, err := marts.ReadProgress(dataDir)
	require.NoError(t, err)
	require.Len(t, progress, 1)
	require.Equal(t, int64(100), progress[0].Records, "every order once")
	require.Equal(t, int64(1), progress[0].Duplicates, "o-7 bare and keyed is one order")

	// Every keyed copy sits in its key's partition.
	s, err := js.Stream(ctx, subjects.StreamClean)
	require.NoError(t, err)
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: subjects.CleanFilters("orders")})
	require.NoError(t, err)
	batch, err := c.FetchNoWait(1000)
	require.NoError(t, err)
	records := 0
	for m := range batch.Messages() {
		p, err := subjects.Parse(m.Subject())
		require.NoError(t, err)
		require.True(t, p.Partitioned, m.Subject())
		for _, line := range strings.Split(strings.TrimSpace(string(m.Data())), "\n") {
			id := strings.TrimSuffix(strings.TrimPrefix(line, `{"id":"`), `","n":1}`)
			require.Equal(t, subjects.PartitionOf(subjects.KeyToken(id), subjects.DefaultPartitions), p.Partition, "%s in %s", id, m.Subject())
			records++
		}
	}
	require.Equal(t, 101, records, "100 rekeyed records and the keyed duplicate")

	dlq, err := js.Stream(ctx, subjects.StreamDLQ)
	require.NoError(t, err)
	info, err := dlq.Info(ctx, jetstream.WithSubjectFilter(subjects.DeadLetter(subjects.StepRekey.Name, "orders")))
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Msgs, "the record that is not JSON")
}
