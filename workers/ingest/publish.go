package ingest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Result counts what one file produced.
type Result struct {
	Records    int // records read and published
	Messages   int // messages published (fewer than Records in bulk mode)
	Duplicates int // messages the server had already stored (a re-ingest, a producer retry)
	Skipped    int // records over the largest message the server takes, not published
	// Republished counts messages published again because the stream did
	// not answer (an election, a lost connection). One acknowledged as a
	// duplicate is counted here, not in Duplicates: the copy stored may be
	// its own first attempt.
	Republished int
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
	// RetryFor is how long after its first attempt a message is published
	// again while the stream cannot take it: it has no leader (a node
	// died and an election is on), the connection is being re-made, or
	// another publish of the same message id is being stored. Keep it
	// below the stream's de-duplication window (2 minutes): a retry
	// after that could store a message twice. Default 1 minute.
	RetryFor time.Duration
	// WaitingFunc, when set, hears what publishing waits for once a wait
	// has lasted a second, then every few seconds, and when it is over.
	WaitingFunc func(w Waiting)
}

// logWaiting is the WaitingFunc of the ingest step: it logs what a file's
// publishing waits for (a stream without a leader) and when it goes on.
func logWaiting(log zerolog.Logger) func(Waiting) {
	return func(w Waiting) {
		if w.Over {
			log.Info().Dur("waited", w.For).Str("reason", w.Reason).Msg("publishing again")
			return
		}
		log.Warn().Err(w.Err).Dur("waited", w.For).Str("reason", w.Reason).Msg(w.Reason + ", waiting")
	}
}

// Waiting is what a [Publisher] waits for.
type Waiting struct {
	// Reason says what is waited for: "JF_INGEST has no leader".
	Reason string
	// For is how long the wait has lasted.
	For time.Duration
	// Err is the last error the stream or connection gave.
	Err error
	// Over is set on the last report of a wait: the stream answers again.
	Over bool
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
	pending    []inflight

	stream     string    // the stream that stores Subject, from its acks
	lastAnswer time.Time // when the stream last stored a message
	waitSince  time.Time
	waitReason string
	waitErr    error
	reported   time.Time // last WaitingFunc call of this wait; zero: none yet
}

// inflight is a published message awaiting its ack.
type inflight struct {
	f     jetstream.PubAckFuture
	first time.Time // when it was first published
	sent  time.Time // when it was last published
	tries int
	// unsure: an earlier attempt ended without an answer (timeout, lost
	// connection), so that attempt may have been stored.
	unsure bool
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
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = time.Minute
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
	err := p.send(ctx, subjects.JoinBulk(p.chunk), id, len(p.chunk))
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
	pm := inflight{first: time.Now()}
	if err := p.publish(ctx, &pm, m); err != nil {
		return err
	}
	p.res.Messages++
	p.pending = append(p.pending, pm)
	if len(p.pending) >= p.cfg.AckWindow {
		return p.wait(ctx)
	}
	return nil
}

// publish sends m, retrying while the stream or connection cannot take
// it (see retryReason) for up to RetryFor since pm.first.
func (p *Publisher) publish(ctx context.Context, pm *inflight, m *nats.Msg) error {
	for {
		pm.sent = time.Now()
		f, err := p.cfg.JS.PublishMsgAsync(m, p.cfg.PublishOpts...)
		if err == nil {
			pm.f = f
			return nil
		}
		if err := p.retry(ctx, pm, err); err != nil {
			return err
		}
	}
}

// wait collects the acks of every pending publish, publishing again a
// message the stream did not take for a reason that passes.
func (p *Publisher) wait(ctx context.Context) error {
	defer func() {
		clear(p.pending)
		p.pending = p.pending[:0]
	}()
	for i := range p.pending {
		if err := p.settle(ctx, &p.pending[i]); err != nil {
			return err
		}
	}
	return nil
}

// settle waits for one message's ack, publishing it again after an
// error that passes; messages are settled in order, so a producer retry
// right behind its original finds it stored.
func (p *Publisher) settle(ctx context.Context, pm *inflight) error {
	for {
		select {
		case ack := <-pm.f.Ok():
			switch {
			case ack.Duplicate && pm.unsure:
				p.res.Republished++
			case ack.Duplicate:
				p.res.Duplicates++
			case pm.tries > 0:
				p.res.Republished++
			}
			p.stream = ack.Stream
			p.answered()
			return nil
		case err := <-pm.f.Err():
			if err := p.retry(ctx, pm, err); err != nil {
				return err
			}
			if err := p.publish(ctx, pm, pm.f.Msg()); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// retry decides on a failed attempt: an error that passes (see
// retryReason) within RetryFor waits a backoff and returns nil, for the
// caller to publish again; anything else is returned.
func (p *Publisher) retry(ctx context.Context, pm *inflight, err error) error {
	reason, ok := p.retryReason(err)
	if !ok {
		return fmt.Errorf("publish %s: %w", p.cfg.Subject, err)
	}
	if workers.PublishOutcomeUnknown(err) {
		pm.unsure = true
	}
	if waited := time.Since(pm.first); waited > p.cfg.RetryFor {
		return fmt.Errorf("publish %s: %s for %s, gave up (retry limit %s): %w", p.cfg.Subject, reason, waited.Round(time.Second), p.cfg.RetryFor, err)
	}
	p.waiting(pm, reason, err)
	pm.tries++
	if p.lastAnswer.After(pm.sent) {
		// The stream stored another message since this one was sent: the
		// error is old news (a timeout of a publish lost in an election).
		return nil
	}
	// An id in process is stored within milliseconds; an election takes
	// seconds.
	delay := backoff.Delay(250*time.Millisecond, 2*time.Second, pm.tries)
	if workers.MsgIDInProcess(err) {
		delay = backoff.Delay(10*time.Millisecond, time.Second, pm.tries)
	}
	if !backoff.Sleep(ctx, delay) {
		return ctx.Err()
	}
	return nil
}

// retryReason says what a failed publish waits for, or false when err
// will not pass by waiting (limits, a bad message, permissions).
func (p *Publisher) retryReason(err error) (string, bool) {
	switch {
	case workers.MsgIDInProcess(err):
		return "a message with the same id is being stored", true
	case errors.Is(err, nats.ErrDisconnected) || errors.Is(err, nats.ErrConnectionReconnecting):
		return "the NATS connection is down, reconnecting", true
	case errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return p.streamName() + " has no leader", true
	}
	return "", false
}

// streamName is the stream that stores Subject, as its acks name it or
// as jetfleet's subjects say.
func (p *Publisher) streamName() string {
	if p.stream != "" {
		return p.stream
	}
	if sp, err := subjects.Parse(p.cfg.Subject); err == nil {
		if name := subjects.StreamFor(sp.Kind); name != "" {
			return name
		}
	}
	return "the stream of " + p.cfg.Subject
}

// waitReportEvery spaces the reports of one wait.
const waitReportEvery = 5 * time.Second

// waiting notes a failed attempt of pm and reports the wait once it has
// lasted a second (a blip stays quiet), then every waitReportEvery. A
// wait starts when the stream last answered, or when pm was sent if
// later: an ack lost with a dead leader only fails after the ack
// timeout, and a message may sit in the ack window well after it was
// sent.
func (p *Publisher) waiting(pm *inflight, reason string, err error) {
	now := time.Now()
	if p.waitSince.IsZero() {
		p.waitSince = pm.first
		if p.lastAnswer.After(pm.first) {
			p.waitSince = p.lastAnswer
		}
	}
	p.waitReason, p.waitErr = reason, err
	waited := now.Sub(p.waitSince)
	if p.cfg.WaitingFunc == nil || waited < time.Second {
		return
	}
	if !p.reported.IsZero() && now.Sub(p.reported) < waitReportEvery {
		return
	}
	p.reported = now
	p.cfg.WaitingFunc(Waiting{Reason: reason, For: waited, Err: err})
}

// answered ends a wait: the stream stored a message.
func (p *Publisher) answered() {
	p.lastAnswer = time.Now()
	if p.waitSince.IsZero() {
		return
	}
	if p.cfg.WaitingFunc != nil && !p.reported.IsZero() {
		p.cfg.WaitingFunc(Waiting{Reason: p.waitReason, For: time.Since(p.waitSince), Err: p.waitErr, Over: true})
	}
	p.waitSince, p.reported, p.waitReason, p.waitErr = time.Time{}, time.Time{}, "", nil
}

// ContentID turns a SHA-256 digest into the id prefix of a file's
// messages: 24 hex digits (96 bits) keep ids short and collisions out of
// reach.
func ContentID(sum []byte) string { return hex.EncodeToString(sum)[:24] }
