package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
)

// The books (docs/status.md, "The balance") need records, not messages:
// a bulk message holds many (Jf-Records), and JetStream counts messages.
// So the supervisor keeps a ledger per stream that feeds the balance,
// JF_INGEST (records published, by dataset) and JF_DLQ (records
// dead-lettered, by step and dataset): it reads each message's headers
// once, in order, as it is stored, and keeps running totals in the fleet
// bucket (ledger.<stream>), so its cost is one headers-only delivery per
// message, whatever the streams held before, and a restarted supervisor
// goes on where the last write left off. Totals only grow: a dead letter
// purged later still counts as dead-lettered, a record that ages out of
// JF_INGEST still counts as published.

// LedgerState is a stream's ledger as stored in the fleet bucket.
type LedgerState struct {
	Stream string `json:"stream"`
	// Created is the stream's creation time: a stream created anew (its
	// sequences start over) starts a new ledger.
	Created time.Time `json:"created"`
	// Through is the stream sequence counted up to: every message at or
	// below it was counted, or had left the stream before (Missed).
	Through uint64 `json:"through"`
	// Missed counts messages that left the stream before they were
	// counted (expired, purged or deleted while no supervisor ran).
	Missed   uint64                  `json:"missed"`
	Datasets map[string]*LedgerCount `json:"datasets"`
	// Error is why counting stopped, if it did (e.g. permissions).
	Error string    `json:"error,omitempty"`
	At    time.Time `json:"at"`
}

// LedgerCount is what a stream holds (or held) of one dataset.
type LedgerCount struct {
	Messages int64 `json:"messages"`
	Records  int64 `json:"records"`
	// Steps are the records by failing step (JF_DLQ only).
	Steps map[string]int64 `json:"steps,omitempty"`
}

// ledgerStreams are the streams the supervisor keeps a ledger of.
var ledgerStreams = []string{subjects.StreamIngest, subjects.StreamDLQ}

// ledger counts one stream. Its methods are safe for concurrent use.
type ledger struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	log    zerolog.Logger
	stream string

	mu    sync.Mutex
	st    LedgerState
	rev   uint64 // revision of the bucket's value this state continues
	dirty bool
}

func newLedger(js jetstream.JetStream, kv jetstream.KeyValue, log zerolog.Logger, stream string) *ledger {
	return &ledger{
		js: js, kv: kv, log: log.With().Str("ledger", stream).Logger(), stream: stream,
		st: LedgerState{Stream: stream, Datasets: map[string]*LedgerCount{}},
	}
}

// load continues from the ledger in the bucket, if there is one.
func (l *ledger) load(ctx context.Context) error {
	e, err := l.kv.Get(ctx, subjects.KeyLedger(l.stream))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", subjects.KeyLedger(l.stream), err)
	}
	var st LedgerState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		l.log.Warn().Err(err).Msg("unreadable ledger; counting anew")
		return nil
	}
	if st.Datasets == nil {
		st.Datasets = map[string]*LedgerCount{}
	}
	st.Error = ""
	l.mu.Lock()
	l.st, l.rev = st, e.Revision()
	l.mu.Unlock()
	return nil
}

// run counts until ctx ends, starting over after an error.
func (l *ledger) run(ctx context.Context) {
	delay := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := l.scan(ctx)
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		if err != nil && l.st.Error != err.Error() {
			l.st.Error, l.dirty = err.Error(), true
		}
		l.mu.Unlock()
		l.log.Warn().Err(err).Dur("retry_in", delay).Msg("counting stopped; starting over")
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
	}
}

// scan reads the stream's headers from where the ledger stands.
func (l *ledger) scan(ctx context.Context) error {
	s, err := l.js.Stream(ctx, l.stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", l.stream, err)
	}
	info := s.CachedInfo()
	l.mu.Lock()
	if !l.st.Created.Equal(info.Created) || l.st.Through > info.State.LastSeq {
		if l.st.Through > 0 {
			l.log.Info().Time("created", info.Created).Msg("the stream was created anew; counting from its start")
		}
		l.st = LedgerState{Stream: l.stream, Created: info.Created, Datasets: map[string]*LedgerCount{}}
		l.dirty = true
	}
	from := l.st.Through
	l.mu.Unlock()
	cfg := jetstream.OrderedConsumerConfig{HeadersOnly: true, NamePrefix: "jf_ledger", DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from+1
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", l.stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		return fmt.Errorf("read %s: %w", l.stream, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	var (
		last     uint64
		haveLast bool
	)
	for {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout):
			// Nothing came for a second after the stream's last sequence
			// was read: what existed up to it was delivered, and what was
			// not had left the stream before it was counted.
			if haveLast {
				l.skipTo(last)
			}
			si, err := s.Info(ctx)
			if err != nil {
				return fmt.Errorf("stream %s: %w", l.stream, err)
			}
			last, haveLast = si.State.LastSeq, true
			continue
		case err != nil:
			return fmt.Errorf("read %s: %w", l.stream, err)
		}
		l.count(m)
		haveLast = false
	}
}

// count adds one message to the ledger.
func (l *ledger) count(m jetstream.Msg) {
	meta, err := m.Metadata()
	if err != nil {
		return
	}
	seq := meta.Sequence.Stream
	h := m.Headers()
	records := int64(1)
	if h.Get(subjects.HeaderRecordIndex) == "" {
		if n, err := strconv.Atoi(h.Get(subjects.HeaderRecords)); err == nil && n > 0 {
			records = int64(n)
		}
	}
	p, perr := subjects.Parse(m.Subject())
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq <= l.st.Through {
		return // delivered again after the consumer was recreated
	}
	if seq > l.st.Through+1 {
		l.st.Missed += seq - l.st.Through - 1
	}
	l.st.Through, l.dirty = seq, true
	if perr != nil || p.Dataset == "" {
		return
	}
	c := l.st.Datasets[p.Dataset]
	if c == nil {
		c = &LedgerCount{}
		l.st.Datasets[p.Dataset] = c
	}
	c.Messages++
	c.Records += records
	if p.Kind == subjects.KindDLQ {
		if c.Steps == nil {
			c.Steps = map[string]int64{}
		}
		c.Steps[p.Step] += records
	}
}

// skipTo moves the ledger past messages up to last that left the stream
// before they were counted.
func (l *ledger) skipTo(last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last > l.st.Through {
		l.st.Missed += last - l.st.Through
		l.st.Through, l.dirty = last, true
	}
	if l.st.Error != "" {
		l.st.Error, l.dirty = "", true
	}
}

// save writes the ledger to the bucket if it changed. Several supervisors
// count the same stream alike; the one further on wins.
func (l *ledger) save(ctx context.Context, now time.Time) {
	l.mu.Lock()
	if !l.dirty {
		l.mu.Unlock()
		return
	}
	l.st.At = now.UTC()
	data, _ := json.Marshal(l.st)
	through, rev := l.st.Through, l.rev
	l.dirty = false
	l.mu.Unlock()

	key := subjects.KeyLedger(l.stream)
	var (
		newRev uint64
		err    error
	)
	if rev == 0 {
		newRev, err = l.kv.Create(ctx, key, data)
	} else {
		newRev, err = l.kv.Update(ctx, key, data, rev)
	}
	if err != nil {
		// Written by another supervisor meanwhile (or not at all): take its
		// revision, and write again next time unless it is further on.
		e, gerr := l.kv.Get(ctx, key)
		l.mu.Lock()
		defer l.mu.Unlock()
		if gerr != nil {
			l.dirty = true
			l.log.Debug().Err(err).Msg("write ledger")
			return
		}
		var theirs LedgerState
		_ = json.Unmarshal(e.Value(), &theirs)
		l.rev = e.Revision()
		l.dirty = theirs.Through < through || !theirs.Created.Equal(l.st.Created)
		return
	}
	l.mu.Lock()
	l.rev = newRev
	l.mu.Unlock()
}

// readLedgers reads the ledgers from the bucket; absent ones are nil.
func readLedgers(ctx context.Context, kv jetstream.KeyValue) (map[string]*LedgerState, error) {
	out := map[string]*LedgerState{}
	if kv == nil {
		return out, nil
	}
	recs, err := readAll(ctx, kv, subjects.KeyPrefixLedger)
	if err != nil {
		return nil, err
	}
	for _, v := range recs {
		var st LedgerState
		if json.Unmarshal(v, &st) == nil && st.Stream != "" {
			out[st.Stream] = &st
		}
	}
	return out, nil
}
