package workers_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// BenchmarkHop is the runtime's publish path, one persisted hop: a
// passthrough worker consumes b.N records from JF_INGEST, publishes each
// to JF_VALID with its derived id and acks after the pub-ack. Records are
// stored before the timer starts; the clock stops when the worker has
// acked them all, and the run fails unless JF_VALID holds exactly b.N.
// Allocations include the in-process server's.
func BenchmarkHop(b *testing.B) {
	for _, bulk := range []int{1, 100} {
		b.Run(fmt.Sprintf("records_per_msg=%d", bulk), func(b *testing.B) { benchmarkHop(b, bulk) })
	}
}

func benchmarkHop(b *testing.B, perMsg int) {
	nc, js := embeddedtest.JetStream(b)
	ctx := b.Context()
	if err := subjects.Ensure(ctx, js, subjects.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	msgs := storeRecords(b, js, b.N, perMsg)
	w, err := workers.New(workers.Config{
		Conn: nc, Step: subjects.StepValidate, Dataset: dataset,
		NewHandlerFunc: func() (workers.Handler, error) {
			return workers.Passthrough(subjects.StepValidate.OutputSubject(dataset)), nil
		},
		Logger: zerolog.Nop(),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := w.Start(ctx); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for w.Snapshot().Counters.Acked < int64(msgs) {
		if time.Now().After(deadline) {
			b.Fatalf("acked %d of %d messages in 5m", w.Snapshot().Counters.Acked, msgs)
		}
		time.Sleep(time.Millisecond) // polling the worker's own counter
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Stop(stopCtx); err != nil {
		b.Fatal(err)
	}
	s, err := js.Stream(ctx, subjects.StreamValid)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if want := uint64(msgs); info.State.Msgs != want {
		b.Fatalf("JF_VALID holds %d messages, want %d", info.State.Msgs, want)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
}

// storeRecords publishes n records to JF_INGEST in messages of perMsg
// records and returns the message count.
func storeRecords(b *testing.B, js jetstream.JetStream, n, perMsg int) int {
	b.Helper()
	msgs := 0
	for i := 0; i < n; i += perMsg {
		m := nats.NewMsg(subjects.Ingest(dataset))
		k := min(perMsg, n-i)
		for j := range k {
			m.Data = fmt.Appendf(m.Data, `{"order_id":"o-%d","amount":%d}`+"\n", i+j, j)
		}
		if perMsg > 1 {
			m.Header.Set(subjects.HeaderRecords, strconv.Itoa(k))
		}
		m.Header.Set(subjects.HeaderMsgID, "bench-"+strconv.Itoa(i))
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
		msgs++
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		b.Fatal("publish did not complete")
	}
	return msgs
}
