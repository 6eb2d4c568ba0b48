package validate_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/internal/cputime"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/validate"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// smokeLines are the eight records of the shop smoke test.
var smokeLines = []string{
	`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
	`{"order_id":"s-2","customer_id":"c-1","amount":20,"currency":"EUR","country":"DE","ts":"2026-10-01T23:30:00-02:00"}`,
	`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
	`{"order_id":"s-1","customer_id":"c-1","amount":10,"currency":"usd","country":"us","ts":"2026-10-01T10:00:00Z"}`,
	`{"order_id":"s-5","customer_id":"c-3","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
	`{"order_id":"s-6","customer_id":"c-3","amount":"7","currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
	`this line is not json`,
	`{"order_id":"s-8","customer_id":"c-3","amount":7,"currency":"BTC","country":"US","ts":"2026-10-01T10:00:00Z"}`,
}

type testBundle struct {
	nc *nats.Conn
	js jetstream.JetStream
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(t, err)
	workertest.StartWorker(t, workers.Config{
		Conn: nc, Step: subjects.StepValidate, Dataset: "orders",
		NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
		Logger:         zerolog.New(zerolog.NewTestWriter(t)),
	})
	return &testBundle{nc: nc, js: js}
}

func TestHandlerOnWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for i, line := range smokeLines {
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = []byte(line)
		m.Header.Set(subjects.HeaderMsgID, "line-"+strconv.Itoa(i+1))
		_, err := b.js.PublishMsg(t.Context(), m)
		require.NoError(t, err)
	}
	valid := embeddedtest.WaitStream(t, b.js, subjects.StreamValid, 4, 15*time.Second)
	for i, idx := range []int{0, 1, 2, 3} {
		require.Equal(t, smokeLines[idx], string(valid[i].Data), "valid records are forwarded unchanged")
		require.Equal(t, subjects.Valid("orders"), valid[i].Subject)
	}
	dead := embeddedtest.WaitStream(t, b.js, subjects.StreamDLQ, 4, 15*time.Second)
	reasons := map[string]string{}
	for _, d := range dead {
		require.Equal(t, subjects.DeadLetter("validate", "orders"), d.Subject)
		reasons[string(d.Data)] = d.Header.Get(subjects.HeaderReason)
	}
	require.Equal(t, "validation failed: amount: -1 is below the minimum 0", reasons[smokeLines[4]])
	require.Equal(t, `validation failed: amount: is a string "7", want a number`, reasons[smokeLines[5]])
	require.Contains(t, reasons[smokeLines[6]], "record is not valid JSON: invalid character 'h' in literal true")
	require.Equal(t, `validation failed: currency: "BTC" is not one of USD, EUR, GBP`, reasons[smokeLines[7]])
}

func TestHandlerBulk(t *testing.T) {
	t.Parallel()
	b := setup(t)
	m := nats.NewMsg(subjects.Ingest("orders"))
	m.Data = subjects.JoinBulk([][]byte{[]byte(smokeLines[0]), []byte(smokeLines[4]), []byte(smokeLines[2]), []byte(smokeLines[6])})
	m.Header.Set(subjects.HeaderRecords, "4")
	m.Header.Set(subjects.HeaderMsgID, "chunk-1")
	_, err := b.js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	valid := embeddedtest.WaitStream(t, b.js, subjects.StreamValid, 1, 15*time.Second)
	require.Equal(t, "2", valid[0].Header.Get(subjects.HeaderRecords))
	recs, bulk := subjects.SplitBulk(valid[0].Header, valid[0].Data)
	require.True(t, bulk)
	require.Equal(t, smokeLines[0], string(recs[0]))
	require.Equal(t, smokeLines[2], string(recs[1]))
	dead := embeddedtest.WaitStream(t, b.js, subjects.StreamDLQ, 2, 15*time.Second)
	require.Equal(t, "1", dead[0].Header.Get(subjects.HeaderRecordIndex))
	require.Equal(t, "3", dead[1].Header.Get(subjects.HeaderRecordIndex))
}

func TestNewRejectsBadDataset(t *testing.T) {
	t.Parallel()
	_, err := validate.New(nil)
	require.ErrorIs(t, err, workers.ErrInvalidConfig)
	_, err = validate.New(&pipeline.Dataset{Name: "a.b"})
	require.ErrorIs(t, err, workers.ErrInvalidConfig)
}

func BenchmarkValidate(b *testing.B) {
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(b, err)
	rec := workers.Record{Data: []byte(smokeLines[2])}
	b.ReportAllocs()
	b.SetBytes(int64(len(rec.Data)))
	defer cputime.PerOp(b, "", 0)()
	for b.Loop() {
		if _, err := h.Handle(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// generated is the lines of a testdata file of orders as the bench
// generator makes them (jetfleet bench --generate).
func generated(tb testing.TB, name string) [][]byte {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name))
	require.NoError(tb, err)
	return bytes.Split(bytes.TrimSpace(data), []byte{'\n'})
}

// BenchmarkValidateGenerated: 1000 generated orders, one at a time (5%
// invalid, 2% duplicates), then 1000 invalid ones (each breaks one rule,
// one in seven is not JSON).
func BenchmarkValidateGenerated(b *testing.B) {
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(b, err)
	for _, file := range []string{"orders.ndjson", "orders-invalid.ndjson"} {
		b.Run(file, func(b *testing.B) {
			recs := generated(b, file)
			b.ReportAllocs()
			defer cputime.PerOp(b, "", 0)()
			n := 0
			for b.Loop() {
				_, _ = h.Handle(context.Background(), workers.Record{Data: recs[n%len(recs)]})
				n++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkValidateBulk is the step on bulk chunks of 100 generated
// orders as the runtime handles one: split, every record through the
// handler, the valid ones joined into the output chunk. An op is a chunk;
// record/cpu-s is records per second of one core.
func BenchmarkValidateBulk(b *testing.B) {
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(b, err)
	recs := generated(b, "orders.ndjson")
	var chunks [][]byte
	for i := 0; i+100 <= len(recs); i += 100 {
		chunks = append(chunks, subjects.JoinBulk(recs[i:i+100]))
	}
	header := nats.Header{subjects.HeaderRecords: []string{"100"}}
	outs := make([]workers.Output, 0, 100)
	var body [][]byte
	b.ReportAllocs()
	defer cputime.PerOp(b, "record", 100)()
	for i := 0; b.Loop(); i++ {
		lines, _ := subjects.SplitBulk(header, chunks[i%len(chunks)])
		outs, body = outs[:0], body[:0]
		for j, line := range lines {
			var err error
			if outs, err = h.HandleAppend(context.Background(), &workers.Record{Data: line, Index: j, Bulk: true}, outs); err != nil && !workers.IsPermanent(err) {
				b.Fatal(err)
			}
		}
		for _, o := range outs {
			body = append(body, o.Data)
		}
		_ = subjects.JoinBulk(body)
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkValidateInvalid(b *testing.B) {
	h, err := validate.New(examples.Shop().Dataset("orders"))
	require.NoError(b, err)
	rec := workers.Record{Data: []byte(smokeLines[7])}
	b.ReportAllocs()
	defer cputime.PerOp(b, "", 0)()
	for b.Loop() {
		if _, err := h.Handle(context.Background(), rec); err == nil {
			b.Fatal(fmt.Errorf("want an error"))
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
