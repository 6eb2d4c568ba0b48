package ingest

import (
	"context"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

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
	Skipped    int // records over the largest message the server takes, not published
}

// maxBulkBytes caps a bulk message below the server's default 1 MiB payload.
const maxBulkBytes = 512 << 10

// headerRoom is what a message's headers may take of the server's max
// payload: a record above max payload less this is skipped.
const headerRoom = 1024

// ackWindow is how many publishes may await their ack by default: the
// memory bound of publishing and enough to keep the server busy.
const ackWindow = 256

// PublisherConfig configures a [Publisher].
type PublisherConfig struct {
	// JS is the JetStream context to publish with. Required.
	JS jetstream.JetStream
	// Dataset is the dataset the records belong to: its ingest settings
	// (bulk, id) and key. Required.
	Dataset *pipeline.Dataset
	// Subject is where records go. Default jf.ingest.<dataset>.
	Subject string
	// ContentID is the id prefix of a file's messages (see [ContentID]):
	// a record's id is f:<content id>:<line>, a chunk's
	// f:<content id>:<first line>-<last line>. Input that cannot be hashed
	// before it is published (a stream) leaves it empty: a record's id is
	// then the hash of its bytes and a chunk's the hash of its records'.
	ContentID string
	// IDField, when set, makes a record's id k:<dataset>:<its value> (see
	// pipeline.KeyString), as ingest.id: key does with the dataset key.
	// A record without it keeps the id it would have had. Record mode only.
	IDField string
	// Bulk, above 0, is how many records one message carries instead of
	// the dataset's ingest.bulk (1: one message per record).
	Bulk int
	// MaxRecordBytes is the largest record published: a larger one, or one
	// a Reader cut (Options.KeepLong), is skipped and counted, and
	// SkippedFunc hears of it. Default: the server's max payload less
	// room for headers.
	MaxRecordBytes int
	// SkippedFunc is called with every record skipped and its size.
	SkippedFunc func(rec Record, size int)
	// PublishOpts go with every publish (a command line tool retries
	// while a stream has no leader).
	PublishOpts []jetstream.PublishOpt
	// AckWindow is how many publishes may await their ack. Default 256.
	AckWindow int
}

// Publisher publishes records to a dataset's ingest subject: the one
// ingress path of files dropped into a landing directory or bucket and of
// `jetfleet publish`, so that a file gets the same messages, ids and
// typing whichever way it comes in. It is not safe for concurrent use.
type Publisher struct {
	cfg  PublisherConfig
	bulk int
	res  Result

	chunk      [][]byte
	chunkIDs   []string // record ids of a chunk of input without a ContentID
	chunkBytes int
	chunkFirst int
	chunkLast  int
	pending    []jetstream.PubAckFuture
}

// NewPublisher checks cfg. It does no I/O.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if cfg.JS == nil || cfg.Dataset == nil {
		return nil, fmt.Errorf("%w: publisher needs JS and Dataset", workers.ErrInvalidConfig)
	}
	if cfg.Subject == "" {
		cfg.Subject = subjects.Ingest(cfg.Dataset.Name)
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = MaxRecordBytes(cfg.JS.Conn())
	}
	if cfg.AckWindow <= 0 {
		cfg.AckWindow = ackWindow
	}
	if cfg.IDField == "" && cfg.Dataset.Ingest.ID == pipeline.IDKey {
		cfg.IDField = cfg.Dataset.Key
	}
	p := &Publisher{cfg: cfg, bulk: cfg.Dataset.Ingest.Bulk}
	if cfg.Bulk > 0 {
		p.bulk = cfg.Bulk
	}
	return p, nil
}

// MaxRecordBytes is the largest record nc's server takes in one message:
// its max payload less room for headers.
func MaxRecordBytes(nc *nats.Conn) int {
	if nc == nil || nc.MaxPayload() <= 0 {
		return 1<<20 - headerRoom // the server's default
	}
	return int(nc.MaxPayload()) - headerRoom
}

// Add publishes one record, or adds it to the chunk in the making.
func (p *Publisher) Add(ctx context.Context, rec Record) error {
	size := len(rec.Data)
	if rec.Cut {
		size = rec.Size
	}
	if rec.Cut || size > p.cfg.MaxRecordBytes {
		p.res.Skipped++
		if p.cfg.SkippedFunc != nil {
			p.cfg.SkippedFunc(rec, size)
		}
		return nil
	}
	p.res.Records++
	if p.bulk <= 1 {
		return p.send(ctx, rec.Data, p.recordID(rec), 0)
	}
	if len(p.chunk) > 0 && p.chunkBytes+len(rec.Data)+1 > min(maxBulkBytes, p.cfg.MaxRecordBytes) {
		if err := p.flushChunk(ctx); err != nil {
			return err
		}
	}
	if len(p.chunk) == 0 {
		p.chunkFirst = rec.Line
	}
	p.chunkLast = rec.Line
	p.chunk = append(p.chunk, append([]byte(nil), rec.Data...))
	if p.cfg.ContentID == "" {
		p.chunkIDs = append(p.chunkIDs, p.recordID(rec))
	}
	p.chunkBytes += len(rec.Data) + 1
	if len(p.chunk) >= p.bulk {
		return p.flushChunk(ctx)
	}
	return nil
}

// Close publishes the last chunk, waits for every ack and returns the
// counts.
func (p *Publisher) Close(ctx context.Context) (Result, error) {
	if err := p.flushChunk(ctx); err != nil {
		return p.res, err
	}
	return p.res, p.wait(ctx)
}

func (p *Publisher) flushChunk(ctx context.Context) error {
	if len(p.chunk) == 0 {
		return nil
	}
	id := "f:" + p.cfg.ContentID + ":" + strconv.Itoa(p.chunkFirst) + "-" + strconv.Itoa(p.chunkLast)
	if p.cfg.ContentID == "" {
		id = subjects.HashID(strings.Join(p.chunkIDs, "\x00"))
	}
	err := p.send(ctx, workers.JoinBulk(p.chunk), id, len(p.chunk))
	p.chunk, p.chunkIDs, p.chunkBytes = p.chunk[:0], p.chunkIDs[:0], 0
	return err
}

// recordID is the message id of one record.
func (p *Publisher) recordID(rec Record) string {
	if p.cfg.IDField != "" {
		if id, ok := KeyID(p.cfg.Dataset.Name, rec.Data, p.cfg.IDField); ok {
			return id
		}
		// No key to go by: the record is invalid anyway, and its content
		// id still makes a re-ingest of the same file a no-op.
	}
	if p.cfg.ContentID == "" {
		return subjects.HashID(string(rec.Data))
	}
	return "f:" + p.cfg.ContentID + ":" + strconv.Itoa(rec.Line)
}

// KeyID is the message id of a record of dataset by the value of its
// field: k:<dataset>:<value> (hashed when longer than 100 bytes); false
// when the record is not an object with that field.
func KeyID(dataset string, data []byte, field string) (string, bool) {
	var f pipeline.Fields
	if f.Scan(data) != nil {
		return "", false
	}
	v, ok := f.Get(field)
	if !ok || v.Kind() == pipeline.KindNull {
		return "", false
	}
	id := "k:" + dataset + ":" + pipeline.KeyString(v.Any())
	if len(id) > 100 {
		id = subjects.HashID(id)
	}
	return id, true
}

func (p *Publisher) send(ctx context.Context, data []byte, id string, bulk int) error {
	m := nats.NewMsg(p.cfg.Subject)
	m.Data = data
	m.Header.Set(subjects.HeaderMsgID, id)
	if bulk > 0 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(bulk))
	}
	f, err := p.cfg.JS.PublishMsgAsync(m, p.cfg.PublishOpts...)
	if err != nil {
		return fmt.Errorf("publish %s: %w", p.cfg.Subject, err)
	}
	p.res.Messages++
	p.pending = append(p.pending, f)
	if len(p.pending) >= p.cfg.AckWindow {
		return p.wait(ctx)
	}
	return nil
}

// wait collects the acks of every pending publish.
func (p *Publisher) wait(ctx context.Context) error {
	defer func() { p.pending = p.pending[:0] }()
	for _, f := range p.pending {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				p.res.Duplicates++
			}
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", p.cfg.Subject, err)
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
