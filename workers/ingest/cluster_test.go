package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

// TestPublisherTakesMsgIDInProcess: on a replicated stream a message
// whose id is still being stored (a producer retry on the next line of
// a file) is answered "409 duplicate message id is in process"
// (err_code 10158). The publisher asks again and counts it a duplicate
// instead of failing the file.
func TestPublisherTakesMsgIDInProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c, err := embedded.StartCluster("jf", 3, t.TempDir(), zerolog.New(zerolog.NewTestWriter(t)), true)
	require.NoError(t, err)
	t.Cleanup(c.Shutdown)
	nc, err := nats.Connect(c.ClientURLs())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx := t.Context()
	// R3 streams need a meta leader first, and an election sends no event.
	embeddedtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		return subjects.Ensure(ctx, js, subjects.StreamOptions{Replicas: 3})
	})

	// The server answers 10158 here: two publishes of one id back to back.
	sawInProcess := false
	for i := 0; i < 50 && !sawInProcess; i++ {
		var fs []jetstream.PubAckFuture
		for range 2 {
			m := nats.NewMsg(subjects.Ingest("probe"))
			m.Data = []byte(`{}`)
			m.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("probe-%d", i))
			f, err := js.PublishMsgAsync(m)
			require.NoError(t, err)
			fs = append(fs, f)
		}
		for _, f := range fs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				require.True(t, workers.MsgIDInProcess(err), "unexpected error: %v", err)
				sawInProcess = true
			case <-time.After(10 * time.Second):
				require.FailNow(t, "no ack")
			}
		}
	}
	require.True(t, sawInProcess, "the cluster never answered 'duplicate message id is in process'")

	// A file with producer retries: some orders twice or three times in a
	// row, with --id-field order_id.
	var file bytes.Buffer
	lines, distinct := 0, 0
	for i := range 400 {
		distinct++
		for range 1 + i%3 {
			fmt.Fprintf(&file, `{"order_id":"o-%d","customer_id":"c-1","amount":%d,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`+"\n", i, i)
			lines++
		}
	}
	spec := examples.Shop()
	src := ingest.Source{Name: "orders.ndjson", Open: func(context.Context) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(file.Bytes())), nil
	}}
	res, err := ingest.Publish(ctx, src, ingest.PublisherConfig{JS: js, Dataset: spec.Dataset("orders"), IDField: "order_id"}, nil)
	require.NoError(t, err)
	require.Equal(t, lines, res.Records)
	// A retry after a lost ack that finds its own first attempt stored
	// counts as published again, not as a duplicate.
	require.LessOrEqual(t, res.Duplicates, lines-distinct)
	require.GreaterOrEqual(t, res.Duplicates+res.Republished, lines-distinct, "every producer retry is a duplicate")
	s, err := js.Stream(ctx, subjects.StreamIngest)
	require.NoError(t, err)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subjects.Ingest("orders")))
	require.NoError(t, err)
	require.Equal(t, uint64(distinct), info.State.Subjects[subjects.Ingest("orders")], "each order stored once")
}
