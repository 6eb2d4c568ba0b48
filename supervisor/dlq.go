package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// DeadLetter is one message of JF_DLQ with its headers taken apart.
type DeadLetter struct {
	Seq         uint64    `json:"seq"`
	Subject     string    `json:"subject"`
	Step        string    `json:"step"`
	Dataset     string    `json:"dataset"`
	Time        time.Time `json:"time"`
	OrigSubject string    `json:"orig_subject"`
	OrigStream  string    `json:"orig_stream"`
	OrigSeq     uint64    `json:"orig_seq"`
	OrigMsgID   string    `json:"orig_msg_id,omitempty"`
	Deliveries  int       `json:"deliveries"`
	Consumer    string    `json:"consumer,omitempty"`
	Worker      string    `json:"worker,omitempty"`
	Reason      string    `json:"reason"`
	// RecordIndex is the record's index in a bulk message, -1 if the
	// dead letter is a whole message.
	RecordIndex int    `json:"record_index"`
	Records     int    `json:"records,omitempty"`
	TraceID     string `json:"trace_id,omitempty"`
	// Truncated says the body was cut to fit the max payload beside the
	// headers; OrigSize is the size of the whole record, which stays in
	// OrigStream at OrigSeq while that stream retains it ([Original]).
	Truncated bool `json:"truncated,omitempty"`
	OrigSize  int  `json:"orig_size,omitempty"`
	// Replayed is when `dlq replay` republished it, if it did.
	Replayed *time.Time  `json:"replayed,omitempty"`
	Header   nats.Header `json:"header,omitempty"`
	Data     []byte      `json:"-"`
}

// DLQFilter selects dead letters; empty fields match any.
type DLQFilter struct {
	Step    string
	Dataset string
	// Limit caps a listing; 0 means no cap.
	Limit int
}

func deadLetterFrom(seq uint64, subject string, at time.Time, h nats.Header, data []byte) DeadLetter {
	d := DeadLetter{Seq: seq, Subject: subject, Time: at.UTC(), Header: h, Data: data, RecordIndex: -1}
	if p, err := subjects.Parse(subject); err == nil {
		d.Step, d.Dataset = p.Step, p.Dataset
	}
	d.OrigSubject = h.Get(subjects.HeaderOrigSubject)
	d.OrigStream = h.Get(subjects.HeaderOrigStream)
	d.OrigSeq, _ = strconv.ParseUint(h.Get(subjects.HeaderOrigSeq), 10, 64)
	d.OrigMsgID = h.Get(subjects.HeaderOrigMsgID)
	d.Deliveries, _ = strconv.Atoi(h.Get(subjects.HeaderDeliveries))
	d.Consumer = h.Get(subjects.HeaderConsumer)
	d.Worker = h.Get(subjects.HeaderWorker)
	d.Reason = h.Get(subjects.HeaderReason)
	if v := h.Get(subjects.HeaderRecordIndex); v != "" {
		d.RecordIndex, _ = strconv.Atoi(v)
	}
	d.Records, _ = strconv.Atoi(h.Get(subjects.HeaderRecords))
	d.TraceID = subjects.TraceID(h.Get(subjects.HeaderTraceParent))
	d.Truncated = h.Get(subjects.HeaderTruncated) == "true"
	d.OrigSize, _ = strconv.Atoi(h.Get(subjects.HeaderOrigSize))
	return d
}

// Original fetches the whole record a dead letter was made of from its
// stream (OrigStream at OrigSeq): for a truncated dead letter the only
// full copy. It wraps [ErrOriginalGone] when the stream no longer holds
// that message (expired, purged, or the sequence now holds another one).
func Original(ctx context.Context, js jetstream.JetStream, d DeadLetter) ([]byte, error) {
	if d.OrigStream == "" || d.OrigSeq == 0 {
		return nil, fmt.Errorf("dead letter %d names no original stream and sequence", d.Seq)
	}
	gone := func(why string) error {
		return fmt.Errorf("dead letter %d: %w: %s seq %d %s", d.Seq, ErrOriginalGone, d.OrigStream, d.OrigSeq, why)
	}
	m, err := getMsg(ctx, js, d.OrigStream, d.OrigSeq)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, gone("(the stream is gone)")
	}
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, gone("has left the stream (expired or purged)")
	}
	if err != nil {
		return nil, fmt.Errorf("get %s seq %d: %w", d.OrigStream, d.OrigSeq, err)
	}
	id := m.Header.Get(subjects.HeaderMsgID)
	if id == "" {
		id = subjects.SequenceMsgID(d.OrigStream, d.OrigSeq)
	}
	if m.Subject != d.OrigSubject || (d.OrigMsgID != "" && id != d.OrigMsgID) {
		return nil, gone(fmt.Sprintf("holds another message (%s, id %s)", m.Subject, id))
	}
	if d.RecordIndex < 0 {
		return m.Data, nil
	}
	recs, _ := subjects.SplitBulk(m.Header, m.Data)
	if d.RecordIndex >= len(recs) {
		return nil, fmt.Errorf("dead letter %d: %s seq %d has %d records, not record %d", d.Seq, d.OrigStream, d.OrigSeq, len(recs), d.RecordIndex)
	}
	return recs[d.RecordIndex], nil
}

// ListDeadLetters returns the dead letters matching f, oldest first.
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, f DLQFilter) ([]DeadLetter, error) {
	stream, err := js.Stream(ctx, subjects.StreamDLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	filter := subjects.DeadLetterFilter(f.Step, f.Dataset)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	var total uint64
	for _, n := range info.State.Subjects {
		total += n
	}
	if total == 0 {
		return nil, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filter, err)
	}
	var out []DeadLetter
	for uint64(len(out)) < total && (f.Limit <= 0 || len(out) < f.Limit) {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				break // purged meanwhile
			}
			return out, fmt.Errorf("read %s: %w", filter, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			continue
		}
		out = append(out, deadLetterFrom(meta.Sequence.Stream, msg.Subject(), meta.Timestamp, msg.Headers(), msg.Data()))
		if meta.NumPending == 0 {
			break
		}
	}
	if err := markReplayed(ctx, js, out); err != nil {
		return out, err
	}
	return out, nil
}

// GetDeadLetter returns the dead letter stored at seq in JF_DLQ.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (*DeadLetter, error) {
	// A dead letter may be as large as the max payload: see getMsg.
	m, err := getMsg(ctx, js, subjects.StreamDLQ, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: seq %d", ErrNotFound, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("get dead letter %d: %w", seq, err)
	}
	d := deadLetterFrom(m.Sequence, m.Subject, m.Time, m.Header, m.Data)
	list := []DeadLetter{d}
	if err := markReplayed(ctx, js, list); err != nil {
		return nil, err
	}
	return &list[0], nil
}

type replayRecord struct {
	At      time.Time `json:"at"`
	Subject string    `json:"subject"`
	Seq     uint64    `json:"seq"`
}

func markReplayed(ctx context.Context, js jetstream.JetStream, dls []DeadLetter) error {
	kv, err := openFleetKV(ctx, js)
	if err != nil || kv == nil {
		return err
	}
	recs, err := readAll(ctx, kv, subjects.KeyPrefixReplayed)
	if err != nil {
		return err
	}
	for i := range dls {
		if v, ok := recs[subjects.KeyReplayed(dls[i].Seq)]; ok {
			var r replayRecord
			if json.Unmarshal(v, &r) == nil {
				dls[i].Replayed = &r.At
			}
		}
	}
	return nil
}

// ReplayOptions select what [Replay] republishes.
type ReplayOptions struct {
	DLQFilter
	// Seqs are the JF_DLQ sequences to replay; empty with All replays
	// every dead letter matching the filter.
	Seqs []uint64
	All  bool
	// DryRun reports what would be replayed and publishes nothing.
	DryRun bool
	// Force replays dead letters replayed before (their new copy is
	// still dropped by the server within its de-duplication window).
	Force bool
}

// ReplayResult is what happened to one dead letter.
type ReplayResult struct {
	Seq     uint64 `json:"seq"`
	Subject string `json:"subject"`
	MsgID   string `json:"msg_id"`
	// Outcome is published, duplicate (the server already had it),
	// skipped (replayed before) or would_publish (dry run).
	Outcome string `json:"outcome"`
	// StreamSeq is where the replayed message landed.
	StreamSeq uint64 `json:"stream_seq,omitempty"`
}

// Replay outcomes.
const (
	ReplayPublished = "published"
	ReplayDuplicate = "duplicate"
	ReplaySkipped   = "skipped"
	ReplayDryRun    = "would_publish"
)

// Replay republishes dead letters to their original subjects with the
// message id subjects.ReplayMsgID(dlqSeq) and marks each replayed in
// the fleet bucket, so replaying twice changes nothing: within the
// server's de-duplication window the id drops a second copy, beyond it
// the mark does (unless Force). A per-record dead letter of a bulk
// message goes back as a single record. Dead letters stay in JF_DLQ;
// `dlq purge` removes them.
func Replay(ctx context.Context, js jetstream.JetStream, o ReplayOptions) ([]ReplayResult, error) {
	if len(o.Seqs) == 0 && !o.All {
		return nil, fmt.Errorf("%w: name dead letters to replay, or all", ErrInvalidConfig)
	}
	var dls []DeadLetter
	if len(o.Seqs) > 0 {
		for _, seq := range o.Seqs {
			d, err := GetDeadLetter(ctx, js, seq)
			if err != nil {
				return nil, err
			}
			if (o.Step != "" && d.Step != o.Step) || (o.Dataset != "" && d.Dataset != o.Dataset) {
				return nil, fmt.Errorf("%w: seq %d is a dead letter of %s/%s", ErrNotFound, seq, d.Step, d.Dataset)
			}
			dls = append(dls, *d)
		}
	} else {
		var err error
		if dls, err = ListDeadLetters(ctx, js, o.DLQFilter); err != nil {
			return nil, err
		}
	}
	var kv jetstream.KeyValue
	if !o.DryRun {
		var err error
		if kv, err = ensureFleetKV(ctx, js, subjects.StreamOptions{}); err != nil {
			return nil, err
		}
	}
	results := make([]ReplayResult, 0, len(dls))
	for _, d := range dls {
		r := ReplayResult{Seq: d.Seq, Subject: d.OrigSubject, MsgID: subjects.ReplayMsgID(d.Seq)}
		switch {
		case d.OrigSubject == "":
			return results, fmt.Errorf("dead letter %d has no %s header; cannot replay", d.Seq, subjects.HeaderOrigSubject)
		case d.Replayed != nil && !o.Force:
			r.Outcome = ReplaySkipped
		case o.DryRun:
			if d.Truncated {
				if _, err := Original(ctx, js, d); err != nil {
					return results, err
				}
			}
			r.Outcome = ReplayDryRun
		default:
			if err := replayOne(ctx, js, kv, d, &r); err != nil {
				return results, err
			}
		}
		results = append(results, r)
	}
	return results, nil
}

func replayOne(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, d DeadLetter, r *ReplayResult) error {
	data := d.Data
	if d.Truncated {
		// The dead letter holds only the head of the record: send the whole
		// one from its stream, or nothing.
		var err error
		if data, err = Original(ctx, js, d); err != nil {
			return fmt.Errorf("%w; its body is truncated (%d of %d bytes), so it is not replayed", err, len(d.Data), d.OrigSize)
		}
	}
	m := &nats.Msg{Subject: d.OrigSubject, Data: data, Header: nats.Header{}}
	m.Header.Set(subjects.HeaderMsgID, r.MsgID)
	m.Header.Set(subjects.HeaderReplayOf, strconv.FormatUint(d.Seq, 10))
	if d.OrigStream != "" {
		m.Header.Set(subjects.HeaderReplayedFrom, subjects.SequenceMsgID(d.OrigStream, d.OrigSeq))
	}
	for _, h := range []string{subjects.HeaderTraceParent, subjects.HeaderTraceState} {
		if v := d.Header.Get(h); v != "" {
			m.Header.Set(h, v)
		}
	}
	if d.RecordIndex < 0 && d.Header.Get(subjects.HeaderRecords) != "" {
		m.Header.Set(subjects.HeaderRecords, d.Header.Get(subjects.HeaderRecords))
	}
	if err := fitReplay(m, js.Conn().MaxPayload()); err != nil {
		return fmt.Errorf("replay dead letter %d: %w", d.Seq, err)
	}
	r.MsgID = m.Header.Get(subjects.HeaderMsgID)
	ack, err := js.PublishMsg(ctx, m)
	if err != nil {
		return fmt.Errorf("replay dead letter %d to %s: %w", d.Seq, d.OrigSubject, err)
	}
	r.StreamSeq = ack.Sequence
	r.Outcome = ReplayPublished
	if ack.Duplicate {
		r.Outcome = ReplayDuplicate
	}
	mark, _ := json.Marshal(replayRecord{At: time.Now().UTC(), Subject: d.OrigSubject, Seq: ack.Sequence})
	if _, err := kv.Put(ctx, subjects.KeyReplayed(d.Seq), mark); err != nil {
		return fmt.Errorf("mark dead letter %d replayed: %w", d.Seq, err)
	}
	return nil
}

// fitReplay drops the informational headers of a replay that would not
// fit the max payload with them: a record near the limit goes back with
// only its replay id (and Jf-Records) on top, and one that filled the
// limit with a shorter id of its own without the replay id as well (the
// replay mark still keeps a second replay from sending it; --force
// would).
func fitReplay(m *nats.Msg, limit int64) error {
	size := func() int64 { return int64(m.Size() - len(m.Subject) - len(m.Reply)) }
	if limit <= 0 || size() <= limit {
		return nil
	}
	for _, h := range []string{subjects.HeaderTraceState, subjects.HeaderReplayedFrom, subjects.HeaderReplayOf, subjects.HeaderTraceParent, subjects.HeaderMsgID} {
		m.Header.Del(h)
		if size() <= limit {
			return nil
		}
	}
	return fmt.Errorf("%d bytes with its replay id exceed the server's max payload (%d)", size(), limit)
}

// PurgeDeadLetters removes the dead letters matching f (Limit is
// ignored) and returns how many it removed.
func PurgeDeadLetters(ctx context.Context, js jetstream.JetStream, f DLQFilter) (uint64, error) {
	stream, err := js.Stream(ctx, subjects.StreamDLQ)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	filter := subjects.DeadLetterFilter(f.Step, f.Dataset)
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", subjects.StreamDLQ, err)
	}
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
		return 0, fmt.Errorf("purge %s: %w", filter, err)
	}
	return n, nil
}
