package bench

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
)

// The raw hop's scratch stream. It is the harness's own and no part of
// the wire contract, so it lives here and not in subjects/; it is deleted
// after the run.
const (
	rawStream  = "JFBENCH_RAW"
	rawSubject = "jfbench.raw"
)

// rawHop is the most one persisted hop moves on this server: the run's
// messages async-published to a scratch stream while a pull consumer,
// configured like a step's (explicit ack, same MaxAckPending and fetch
// size), consumes and acks them, written directly against nats.go. The
// rate is records from first publish to last ack.
func rawHop(ctx context.Context, connectFunc func(string) (*nats.Conn, error), msgs []*nats.Msg, records int64) (Rate, error) {
	nc, err := connectFunc("jetfleet-bench-raw-consumer")
	if err != nil {
		return Rate{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return Rate{}, err
	}
	if err := js.DeleteStream(ctx, rawStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return Rate{}, err
	}
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: rawStream, Subjects: []string{rawSubject},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return Rate{}, err
	}
	defer func() {
		delCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = js.DeleteStream(delCtx, rawStream)
	}()
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 1024, AckWait: 30 * time.Second,
	})
	if err != nil {
		return Rate{}, err
	}
	// Every message gets a unique id: the server does the same
	// de-duplication work as on a stage stream, and drops nothing.
	raw := make([]*nats.Msg, len(msgs))
	for i, m := range msgs {
		r := nats.NewMsg(rawSubject)
		r.Data = m.Data
		r.Header.Set(subjects.HeaderMsgID, fmt.Sprintf("raw:%d", i))
		raw[i] = r
	}
	var acked atomic.Int64
	done := make(chan struct{})
	total := int64(len(raw))
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			return // not counted: the run would time out and say so
		}
		if acked.Add(1) == total {
			close(done)
		}
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		return Rate{}, err
	}
	defer cc.Stop()

	start := time.Now()
	pub, err := newPublisher(connectFunc, nil)
	if err != nil {
		return Rate{}, err
	}
	defer pub.close()
	if err := pub.all(ctx, raw, func(*nats.Msg) int { return 1 }); err != nil {
		return Rate{}, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return Rate{}, context.Cause(ctx)
	case <-time.After(5 * time.Minute):
		return Rate{}, fmt.Errorf("consumed %d of %d messages in 5m", acked.Load(), total)
	}
	return newRate(total, records, time.Since(start)), nil
}

// batchMarts is the batch-ETL alternative and the verifier's reference:
// it writes lines (the clean records) as one NDJSON file and has DuckDB
// compute every mart of ds from it with read_json, de-duplicated on the
// dataset's key. It returns each mart's rows in ORDER BY ALL order and
// the time DuckDB took (file writing excluded).
func batchMarts(ctx context.Context, path string, lines [][]byte, spec *pipeline.Spec, ds *pipeline.Dataset) (map[string][][]any, time.Duration, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, 0, err
	}
	if err := os.WriteFile(path, append(bytes.Join(lines, []byte{'\n'}), '\n'), 0o644); err != nil {
		return nil, 0, err
	}
	db, err := duckdb.Open("", nil)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close()

	cols := make([]string, len(ds.Schema))
	types := make([]string, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = duckdb.Ident(c.Name)
		types[i] = fmt.Sprintf("%s: %s", duckdb.Literal(c.Name), duckdb.Literal(c.Type))
	}
	load := fmt.Sprintf(`CREATE TABLE %s AS SELECT %s FROM read_json(%s, format = 'newline_delimited', columns = {%s})
QUALIFY row_number() OVER (PARTITION BY %s) = 1`,
		duckdb.Ident(ds.Name), strings.Join(cols, ", "), duckdb.Literal(path), strings.Join(types, ", "), duckdb.Ident(ds.Key))

	start := time.Now()
	if _, err := conn.ExecContext(ctx, load); err != nil {
		return nil, 0, fmt.Errorf("batch: load %s: %w", path, err)
	}
	out := map[string][][]any{}
	for _, m := range spec.Marts {
		if m.Dataset != ds.Name {
			continue
		}
		rows, err := conn.QueryContext(ctx, "SELECT * FROM ("+m.SQL+") ORDER BY ALL")
		if err != nil {
			return nil, 0, fmt.Errorf("batch: mart %s: %w", m.Name, err)
		}
		got, err := scanAll(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("batch: mart %s: %w", m.Name, err)
		}
		out[m.Name] = got
	}
	return out, time.Since(start), nil
}

func scanAll(rows *sql.Rows) ([][]any, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, vals)
	}
	return out, rows.Err()
}
