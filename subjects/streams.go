package subjects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names of the wire contract, one per stage.
const (
	StreamIngest = "JF_INGEST"
	StreamValid  = "JF_VALID"
	StreamClean  = "JF_CLEAN"
	StreamDLQ    = "JF_DLQ"
	StreamAlerts = "JF_ALERTS"
)

// StreamOptions are the settings an operator may choose for the streams.
type StreamOptions struct {
	// Replicas is 1 on a single server and 3 on a cluster. 0 creates
	// with 1 and accepts whatever replica count existing streams and
	// buckets have, so a process started without it joins a cluster's
	// replicated streams; a set value that differs from an existing
	// stream's is a conflict.
	Replicas int
	// MaxAge keeps stage records this long, so replay and backfill stay
	// possible. Default 7 days.
	MaxAge time.Duration
	// DLQMaxAge keeps dead letters this long. Default 30 days.
	DLQMaxAge time.Duration
	// Duplicates is the server's de-duplication window. Default 2 minutes;
	// the aggregator de-duplicates on the dataset key beyond it.
	Duplicates time.Duration
	// MaxMsgSize caps one message in bytes; 0 leaves the server's limit.
	MaxMsgSize int32
	// Partitions is the number of key partitions of the clean stage
	// (JF_CLEAN's subject transform). It is fixed when the stream is
	// created: a different count on an existing stream is a conflict,
	// since keys would move between partitions. 0 creates
	// DefaultPartitions and joins an existing partitioned stream whatever
	// its count: for processes that neither publish clean records nor
	// aggregate them (the fleet always sets it).
	Partitions int
	// BindOnly makes every Ensure function look, never create or change:
	// a missing stream, consumer or bucket is reported with ErrNotSetUp,
	// one that breaks the contract with ErrStreamConflict or
	// ErrConsumerConflict. Processes on a locked-down server run with it,
	// after `jetfleet setup` made everything (docs/security.md).
	BindOnly bool
}

func (o *StreamOptions) setDefaults() {
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.MaxAge == 0 {
		o.MaxAge = 7 * 24 * time.Hour
	}
	if o.DLQMaxAge == 0 {
		o.DLQMaxAge = 30 * 24 * time.Hour
	}
	if o.Duplicates == 0 {
		o.Duplicates = 2 * time.Minute
	}
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
}

// PartitionCount is the clean stage's partition count these options ask
// for: Partitions, or DefaultPartitions when unset.
func (o StreamOptions) PartitionCount() int {
	o.setDefaults()
	return min(o.Partitions, MaxPartitions)
}

// Streams returns the stream configurations of the wire contract: the
// five stages and [StreamAdvisories].
func Streams(o StreamOptions) []jetstream.StreamConfig {
	o.setDefaults()
	mk := func(name, desc string, kind Kind, maxAge time.Duration) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{join(Root, string(kind), ">")},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      maxAge,
			Duplicates:  o.Duplicates,
			MaxMsgSize:  o.MaxMsgSize,
			Discard:     jetstream.DiscardOld,
		}
	}
	clean := mk(StreamClean, "jetfleet: transformed records, partitioned by key", KindClean, o.MaxAge)
	clean.SubjectTransform = cleanTransform(min(o.Partitions, MaxPartitions))
	return []jetstream.StreamConfig{
		mk(StreamIngest, "jetfleet: raw records as published", KindIngest, o.MaxAge),
		mk(StreamValid, "jetfleet: records that passed validation", KindValid, o.MaxAge),
		clean,
		mk(StreamDLQ, "jetfleet: dead letters with their reasons", KindDLQ, o.DLQMaxAge),
		mk(StreamAlerts, "jetfleet: alerts", KindAlert, o.MaxAge),
		advisoriesStream(o),
	}
}

// StreamFor names the stream that stores subject kind k.
func StreamFor(k Kind) string {
	switch k {
	case KindIngest:
		return StreamIngest
	case KindValid:
		return StreamValid
	case KindClean:
		return StreamClean
	case KindDLQ:
		return StreamDLQ
	case KindAlert:
		return StreamAlerts
	}
	return ""
}

// Ensure creates the streams of the wire contract, or brings existing ones
// up to date where that is safe (limits, de-duplication window). It never
// replaces a stream whose subjects, storage, retention or replicas differ:
// those are reported with ErrStreamConflict, since changing them would move
// or drop data. Ensure is idempotent and safe to run from every process.
// It first refuses a server too old for the contract ([CheckServer]), so
// nothing half-made is left on it.
func Ensure(ctx context.Context, js jetstream.JetStream, o StreamOptions) error {
	if err := CheckServer(js.Conn()); err != nil {
		return err
	}
	_, err := EnsureStreams(ctx, js, o)
	return err
}

// EnsureStreams is [Ensure], saying what it did to each stream.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, o StreamOptions) ([]Change, error) {
	if err := CheckServer(js.Conn()); err != nil {
		return nil, err
	}
	anyReplicas := o.Replicas == 0
	anyPartitions := o.Partitions == 0 // join a partitioned JF_CLEAN whatever its count
	var errs []error
	var changes []Change
	for _, want := range Streams(o) {
		c, err := ensureStream(ctx, js, want, anyReplicas, anyPartitions, o.BindOnly)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changes = append(changes, c)
	}
	return changes, errors.Join(errs...)
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, anyReplicas, anyPartitions, bindOnly bool) (Change, error) {
	change := Change{Kind: "stream", Name: want.Name, Action: ActionUnchanged}
	// Look before creating: a bind-only process may read stream info but
	// not create streams.
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) && bindOnly {
		return change, fmt.Errorf("%w: stream %s does not exist (an admin creates it: jetfleet setup --pipeline FILE)", ErrNotSetUp, want.Name)
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = js.CreateStream(ctx, want)
		if err == nil {
			change.Action = ActionCreated
			return change, nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return change, fmt.Errorf("create stream %s: %w", want.Name, err)
		}
		s, err = js.Stream(ctx, want.Name) // created concurrently by another process
	}
	if err != nil {
		return change, fmt.Errorf("look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if anyReplicas {
		want.Replicas = have.Replicas
	}
	if anyPartitions && PartitionsOf(have) > 0 && PartitionsOf(want) > 0 {
		want.SubjectTransform = have.SubjectTransform
	}
	if diffs := conflicts(have, want); len(diffs) > 0 {
		return change, fmt.Errorf("%w: stream %s: %s (change or delete it by hand; jetfleet will not)",
			ErrStreamConflict, want.Name, strings.Join(diffs, "; "))
	}
	// The server reports an unset MaxMsgSize as -1: the same as our 0.
	sameMaxMsg := have.MaxMsgSize == want.MaxMsgSize || (have.MaxMsgSize <= 0 && want.MaxMsgSize <= 0)
	if bindOnly || (have.MaxAge == want.MaxAge && have.Duplicates == want.Duplicates && sameMaxMsg) {
		return change, nil // a bind-only process takes the limits the admin chose
	}
	upd := have
	upd.MaxAge, upd.Duplicates, upd.MaxMsgSize = want.MaxAge, want.Duplicates, want.MaxMsgSize
	if _, err := js.UpdateStream(ctx, upd); err != nil {
		return change, fmt.Errorf("update stream %s: %w", want.Name, err)
	}
	change.Action, change.Detail = ActionUpdated, fmt.Sprintf("max_age %s, duplicate_window %s, max_msg_size %d", want.MaxAge, want.Duplicates, want.MaxMsgSize)
	return change, nil
}

func conflicts(have, want jetstream.StreamConfig) []string {
	var d []string
	if !slices.Equal(have.Subjects, want.Subjects) {
		d = append(d, fmt.Sprintf("subjects %v, want %v", have.Subjects, want.Subjects))
	}
	if have.Storage != want.Storage {
		d = append(d, fmt.Sprintf("storage %s, want %s", have.Storage, want.Storage))
	}
	if have.Retention != want.Retention {
		d = append(d, fmt.Sprintf("retention %s, want %s", have.Retention, want.Retention))
	}
	// Count limits drop records whatever their age: the contract keeps
	// them by age only.
	if have.MaxMsgs > 0 {
		d = append(d, fmt.Sprintf("max_msgs %d, want unlimited", have.MaxMsgs))
	}
	if have.MaxMsgsPerSubject > 0 {
		d = append(d, fmt.Sprintf("max_msgs_per_subject %d, want unlimited", have.MaxMsgsPerSubject))
	}
	if have.Replicas != want.Replicas {
		d = append(d, fmt.Sprintf("replicas %d, want %d", have.Replicas, want.Replicas))
	}
	switch h, w := PartitionsOf(have), PartitionsOf(want); {
	case h == w:
	case h == 0:
		d = append(d, fmt.Sprintf("not partitioned by key, want %d key partitions (the stream predates partitioning: drain the pipeline, delete the stream and the aggregator state, and replay; see docs/scale-out.md)", w))
	default:
		d = append(d, fmt.Sprintf("%d key partitions, want %d (a new count would move keys between partitions and break de-duplication: run every process with --partition-count %d, or drain and recreate the stream)", h, w, h))
	}
	return d
}
