package workers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

var publishBody = []byte(`{"amount":10,"amount_usd":10,"country":"US","currency":"USD","customer_id":"c-1","order_id":"s-1","ts":"2026-10-01T10:00:00Z"}`)

func publishSetup(b *testing.B) (*nats.Conn, jetstream.JetStream) {
	nc, js := embeddedtest.JetStream(b)
	_, err := js.CreateStream(b.Context(), jetstream.StreamConfig{
		Name: "S", Subjects: []string{"s.>"}, Storage: jetstream.FileStorage,
		Duplicates: 2 * time.Minute, AllowBatchPublish: true,
	})
	if err != nil {
		b.Fatal(err)
	}
	return nc, js
}

func publishReport(b *testing.B, start time.Time, c0 time.Duration, js jetstream.JetStream) {
	el, c := time.Since(start), cpuTime()-c0
	info, err := js.Stream(context.Background(), "S")
	if err != nil {
		b.Fatal(err)
	}
	if got := info.CachedInfo().State.Msgs; got != uint64(b.N) {
		b.Fatalf("stored %d of %d", got, b.N)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
	b.ReportMetric(float64(c.Nanoseconds())/float64(b.N), "cpu-ns/msg")
}

// The publish benchmarks decide how a step publishes its outputs (docs/
// bench.md): BenchmarkPublishAsync is what the worker does, each output an
// async publish with its Nats-Msg-Id and every pub-ack awaited;
// BenchmarkPublishFastBatch sends the same messages as nats-server's
// fast-ingest batches (2.14+; the pinned nats.go has no client for them,
// so the protocol is written out here: reply subjects
// <inbox>.<flow>.<gap>.<seq>.<op>.$FI, flow acks, one ack per committed
// batch), each commit awaited as the acks of its inputs would be.
// Both report msgs/s and the process's CPU per message (server included).
func BenchmarkPublishAsync(b *testing.B) {
	_, js := publishSetup(b)
	b.ResetTimer()
	start, c0 := time.Now(), cpuTime()
	for i := range b.N {
		m := &nats.Msg{Subject: "s.x", Data: publishBody, Header: nats.Header{}}
		m.Header.Set("Nats-Msg-Id", "in-"+strconv.Itoa(i)+"/validate")
		m.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if _, err := js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	publishReport(b, start, c0, js)
}

func BenchmarkPublishFastBatch(b *testing.B) {
	for _, size := range []int{16, 128, 1024} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			nc, js := publishSetup(b)
			inbox := nc.NewInbox()
			var acked atomic.Uint64 // highest flow-acked seq of the current batch
			commits := make(chan []byte, 64)
			sub, err := nc.Subscribe(inbox+".>", func(m *nats.Msg) {
				if len(m.Data) > 0 && m.Data[0] == '{' && json.Valid(m.Data) {
					var fa struct {
						Type string `json:"type"`
						Seq  uint64 `json:"seq"`
					}
					_ = json.Unmarshal(m.Data, &fa)
					if fa.Type == "ack" {
						acked.Store(fa.Seq)
						return
					}
				}
				commits <- m.Data
			})
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = sub.Unsubscribe() }()
			const flow = 100
			b.ResetTimer()
			start, c0 := time.Now(), cpuTime()
			for i, batch := 0, 0; i < b.N; batch++ {
				id := inbox + ".b" + strconv.Itoa(batch)
				acked.Store(0)
				n := min(size, b.N-i)
				for k := 1; k <= n; k++ {
					op := 1
					switch {
					case k == n:
						op = 2
					case k == 1:
						op = 0
					}
					for uint64(k) > acked.Load()+4*flow { // flow control
						time.Sleep(10 * time.Microsecond) // polls the ack handler's counter
					}
					m := &nats.Msg{
						Subject: "s.x", Data: publishBody, Header: nats.Header{},
						Reply: id + "." + strconv.Itoa(flow) + ".fail." + strconv.Itoa(k) + "." + strconv.Itoa(op) + ".$FI",
					}
					m.Header.Set("Nats-Msg-Id", "in-"+strconv.Itoa(i)+"/validate")
					m.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
					if err := nc.PublishMsg(m); err != nil {
						b.Fatal(err)
					}
					i++
				}
				select {
				case ack := <-commits:
					var pa struct {
						Count int             `json:"count"`
						Error json.RawMessage `json:"error"`
					}
					_ = json.Unmarshal(ack, &pa)
					if pa.Error != nil || pa.Count != n {
						b.Fatalf("batch %d: %s", batch, ack)
					}
				case <-time.After(30 * time.Second):
					b.Fatal("no commit ack")
				}
			}
			publishReport(b, start, c0, js)
		})
	}
}
