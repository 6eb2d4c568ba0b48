package ingest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Result counts what one file produced.
type Result struct {
	Records    int // records read and published
	Messages   int // messages published (fewer than Records in bulk mode)
	Duplicates int // messages the server had already stored (a re-ingest)
}

// maxBulkBytes caps a bulk message below the server's default 1 MiB payload.
const maxBulkBytes = 512 << 10

// ackWindow is how many publishes may await their ack: the memory bound
// of publishing and enough to keep the server busy.
const ackWindow = 256

// publish reads every record of r and publishes it to ds's ingest subject.
// Ids come from contentID (the file's hash) and the line number, or from
// the dataset key when ds.Ingest.ID is "key" (record mode only).
func publish(ctx context.Context, js jetstream.JetStream, ds *pipeline.Dataset, r *Reader, contentID string) (Result, error) {
	p := &publisher{js: js, subject: subjects.Ingest(ds.Name), ds: ds, contentID: contentID}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return p.res, err
		}
		if err := p.add(ctx, rec); err != nil {
			return p.res, err
		}
	}
	if err := p.flushChunk(ctx); err != nil {
		return p.res, err
	}
	return p.res, p.wait(ctx)
}

type publisher struct {
	js        jetstream.JetStream
	subject   string
	ds        *pipeline.Dataset
	contentID string
	res       Result

	chunk      [][]byte
	chunkBytes int
	chunkFirst int
	chunkLast  int
	pending    []jetstream.PubAckFuture
}

func (p *publisher) add(ctx context.Context, rec Record) error {
	p.res.Records++
	if p.ds.Ingest.Bulk <= 1 {
		return p.send(ctx, rec.Data, p.recordID(rec), 0)
	}
	if len(p.chunk) > 0 && p.chunkBytes+len(rec.Data)+1 > maxBulkBytes {
		if err := p.flushChunk(ctx); err != nil {
			return err
		}
	}
	if len(p.chunk) == 0 {
		p.chunkFirst = rec.Line
	}
	p.chunkLast = rec.Line
	p.chunk = append(p.chunk, append([]byte(nil), rec.Data...))
	p.chunkBytes += len(rec.Data) + 1
	if len(p.chunk) >= p.ds.Ingest.Bulk {
		return p.flushChunk(ctx)
	}
	return nil
}

func (p *publisher) flushChunk(ctx context.Context) error {
	if len(p.chunk) == 0 {
		return nil
	}
	id := "f:" + p.contentID + ":" + strconv.Itoa(p.chunkFirst) + "-" + strconv.Itoa(p.chunkLast)
	err := p.send(ctx, workers.JoinBulk(p.chunk), id, len(p.chunk))
	p.chunk, p.chunkBytes = p.chunk[:0], 0
	return err
}

// recordID is the message id of one record.
func (p *publisher) recordID(rec Record) string {
	if p.ds.Ingest.ID == pipeline.IDKey {
		if r, err := pipeline.DecodeRecord(rec.Data); err == nil {
			if v, ok := r[p.ds.Key]; ok && v != nil {
				id := "k:" + p.ds.Name + ":" + pipeline.KeyString(v)
				if len(id) > 100 {
					id = subjects.HashID(id)
				}
				return id
			}
		}
		// No key to go by: the record is invalid anyway, and its content
		// id still makes a re-ingest of the same file a no-op.
	}
	return "f:" + p.contentID + ":" + strconv.Itoa(rec.Line)
}

func (p *publisher) send(ctx context.Context, data []byte, id string, bulk int) error {
	m := nats.NewMsg(p.subject)
	m.Data = data
	m.Header.Set(subjects.HeaderMsgID, id)
	if bulk > 0 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(bulk))
	}
	f, err := p.js.PublishMsgAsync(m)
	if err != nil {
		return fmt.Errorf("publish %s: %w", p.subject, err)
	}
	p.res.Messages++
	p.pending = append(p.pending, f)
	if len(p.pending) >= ackWindow {
		return p.wait(ctx)
	}
	return nil
}

// wait collects the acks of every pending publish.
func (p *publisher) wait(ctx context.Context) error {
	defer func() { p.pending = p.pending[:0] }()
	for _, f := range p.pending {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				p.res.Duplicates++
			}
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", p.subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ContentID turns a SHA-256 digest into the id prefix of a file's
// messages: 24 hex digits (96 bits) keep ids short and collisions out of
// reach.
func ContentID(sum []byte) string { return hex.EncodeToString(sum)[:24] }
