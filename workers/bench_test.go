package workers_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"syscall"
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
// acked them all, and the run fails unless JF_VALID holds exactly b.N
// records. Allocations include the in-process server's; cpu-us/record
// is the process's CPU time (server included) per record, steadier than
// wall time on a shared machine. BenchmarkHopRaw is the same hop written
// directly against nats.go, the bar the runtime is measured against.
func BenchmarkHop(b *testing.B) {
	for _, bulk := range []int{1, 100} {
		b.Run(fmt.Sprintf("records_per_msg=%d", bulk), func(b *testing.B) {
			benchmarkHop(b, bulk, func(b *testing.B, nc *nats.Conn, _ jetstream.JetStream, msgs int) {
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
				if err := w.Start(b.Context()); err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Minute)
				for w.Snapshot().Counters.Acked < int64(msgs) {
					if time.Now().After(deadline) {
						b.Fatalf("acked %d of %d messages in 5m", w.Snapshot().Counters.Acked, msgs)
					}
					time.Sleep(time.Millisecond) // polling the worker's own counter
				}
				b.StopTimer()
				stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := w.Stop(stopCtx); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkHopRaw is BenchmarkHop's hop with nats.go alone: a pull
// consumer configured like the worker's (explicit ack, MaxAckPending
// 1024), each message's body async-published as it came (a bulk chunk
// whole, with its Jf-Records header) with a derived id, and the input
// acked, in order, after the pub-ack. It passes the input's traceparent
// on as it is (the worker derives a span of its own per hop).
func BenchmarkHopRaw(b *testing.B) {
	for _, bulk := range []int{1, 100} {
		b.Run(fmt.Sprintf("records_per_msg=%d", bulk), func(b *testing.B) {
			benchmarkHop(b, bulk, rawHop)
		})
	}
}

func rawHop(b *testing.B, _ *nats.Conn, js jetstream.JetStream, msgs int) {
	ctx := b.Context()
	cons, err := js.CreateOrUpdateConsumer(ctx, subjects.StreamIngest, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1024, AckWait: 30 * time.Second,
		FilterSubject: subjects.Ingest(dataset),
	})
	if err != nil {
		b.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		b.Fatal(err)
	}
	defer it.Stop()
	type inFlight struct {
		in jetstream.Msg
		f  jetstream.PubAckFuture
	}
	queue := make(chan inFlight, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range queue {
			select {
			case <-p.f.Ok():
			case err := <-p.f.Err():
				b.Error(err)
				return
			}
			if err := p.in.Ack(); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	out := subjects.Valid(dataset)
	for range msgs {
		m, err := it.Next()
		if err != nil {
			b.Fatal(err)
		}
		pub := &nats.Msg{Subject: out, Data: m.Data(), Header: nats.Header{}}
		pub.Header.Set(subjects.HeaderMsgID, subjects.DeriveMsgID(m.Headers().Get(subjects.HeaderMsgID), "validate", 0))
		if n := m.Headers().Get(subjects.HeaderRecords); n != "" {
			pub.Header.Set(subjects.HeaderRecords, n)
		}
		pub.Header.Set(subjects.HeaderTraceParent, m.Headers().Get(subjects.HeaderTraceParent))
		f, err := js.PublishMsgAsync(pub, jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		queue <- inFlight{m, f}
	}
	close(queue)
	<-done
	b.StopTimer()
}

// benchmarkHop stores b.N records in messages of perMsg, runs hop over
// them with the timer on, and checks JF_VALID holds them all.
func benchmarkHop(b *testing.B, perMsg int, hop func(b *testing.B, nc *nats.Conn, js jetstream.JetStream, msgs int)) {
	nc, js := embeddedtest.JetStream(b)
	ctx := b.Context()
	if err := subjects.Ensure(ctx, js, subjects.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	msgs := storeRecords(b, js, b.N, perMsg)
	runtime.GC() // storing's garbage is not the hop's
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	hop(b, nc, js, msgs)
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
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
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-us/record")
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
			if j > 0 {
				m.Data = append(m.Data, '\n')
			}
			m.Data = append(m.Data, `{"order_id":"o-`...)
			m.Data = strconv.AppendInt(m.Data, int64(i+j), 10)
			m.Data = append(m.Data, `","amount":`...)
			m.Data = strconv.AppendInt(m.Data, int64(j), 10)
			m.Data = append(m.Data, '}')
		}
		if perMsg > 1 {
			m.Header.Set(subjects.HeaderRecords, strconv.Itoa(k))
		}
		m.Header.Set(subjects.HeaderMsgID, "bench-"+strconv.Itoa(i))
		// A trace, as every input of the bench's publisher has.
		m.Header.Set(subjects.HeaderTraceParent, fmt.Sprintf("00-%032x-%016x-01", i+1, i+1))
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
