package aggregate

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// TestAggregateEndToEnd runs the aggregate step as a fleet does, on an
// embedded NATS server: a worker per partition of the clean stage feeds
// the intake, which flushes the lake in the background, and the builder
// keeps the shop marts. Orders arrive one per message and in bulk
// messages, with duplicates right away and days later, and late orders of
// old days; the marts must equal the orders computed in Go.
func TestAggregateEndToEnd(t *testing.T) {
	t.Parallel()
	nc, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	dir := t.TempDir()
	n := subjects.DefaultPartitions
	log := testLog(t)

	eng, err := OpenEngine(EngineConfig{MemoryLimit: "256MB", Threads: 1, TempDir: filepath.Join(t.TempDir(), "duck")})
	require.NoError(t, err)
	b, err := NewMartBuilder(MartBuilderConfig{
		Engine: eng, DataDir: dir, Dataset: shopDataset(), Marts: shopMarts(),
		FlushRecords: 300, FlushInterval: 50 * time.Millisecond, Interval: 20 * time.Millisecond, Logger: log,
	})
	require.NoError(t, err)
	in, err := NewIntake(IntakeConfig{
		Engine: eng, DataDir: dir, Dataset: shopDataset(), Builder: b,
		FlushRecords: 400, FlushInterval: 50 * time.Millisecond, Logger: log,
	})
	require.NoError(t, err)
	require.NoError(t, b.Start(ctx))
	require.NoError(t, in.Start(ctx))
	var ws []*workers.Worker
	for p := range n {
		require.NoError(t, in.OpenPartition(ctx, p))
		w, err := workers.New(in.WorkerConfig(workers.Config{Conn: nc, Logger: log, FetchBatch: 64}, p, n))
		require.NoError(t, err)
		in.SetFeeder(p, w.Pause, w.Resume)
		require.NoError(t, w.Start(ctx))
		ws = append(ws, w)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, w := range ws {
			require.NoError(t, w.Stop(sctx))
		}
		require.NoError(t, in.Stop(sctx))
		require.NoError(t, b.Stop(sctx))
		require.NoError(t, eng.Close())
	}
	t.Cleanup(stop)

	distinct, stream := genOrders(11, 3000)
	// The first half a record per message, the rest in bulk messages of up
	// to 25 records of one partition, as transform publishes them. Each
	// message has an id of its own: only the aggregator can catch the
	// duplicates.
	half := len(stream) / 2
	var last uint64
	publish := func(subject string, data []byte, records int, id string) {
		m := nats.NewMsg(subject)
		m.Data = data
		m.Header.Set(subjects.HeaderMsgID, id)
		if records > 1 {
			m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
		}
		ack, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
		last = ack.Sequence
	}
	tokenOf := func(r []byte) string {
		var o order
		require.NoError(t, json.Unmarshal(r, &o))
		return subjects.KeyToken(o.OrderID)
	}
	for i, r := range stream[:half] {
		publish(subjects.CleanKey("orders", tokenOf(r)), r, 1, "m-"+strconv.Itoa(i))
	}
	chunks := map[int][][]byte{}
	tokens := map[int]string{}
	for i, r := range stream[half:] {
		tok := tokenOf(r)
		p := subjects.PartitionOf(tok, n)
		if _, ok := tokens[p]; !ok {
			tokens[p] = tok
		}
		chunks[p] = append(chunks[p], r)
		if len(chunks[p]) == 25 || i == len(stream)-half-1 {
			for q, c := range chunks {
				if len(c) == 25 || i == len(stream)-half-1 {
					publish(subjects.CleanKey("orders", tokens[q]), subjects.JoinBulk(c), len(c), "b-"+strconv.Itoa(i)+"-"+strconv.Itoa(q))
					delete(chunks, q)
					delete(tokens, q)
				}
			}
		}
	}
	embeddedtest.WaitFor(t, time.Minute, "marts hold every message", func() bool {
		ms, err := marts.ReadManifests(dir)
		if err != nil || len(ms) != 3 {
			return false
		}
		for _, m := range ms {
			if m.LastSeq < last {
				return false
			}
		}
		return true
	})
	stop()
	requireShopMarts(t, dir, distinct)
	p, err := marts.ReadProgress(dir)
	require.NoError(t, err)
	require.Len(t, p, 1)
	require.Equal(t, int64(len(distinct)), p[0].Records)
	require.Equal(t, int64(len(stream)-len(distinct)), p[0].Duplicates)
}
