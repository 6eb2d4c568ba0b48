package subjects

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// What an Ensure function did to one resource.
const (
	ActionCreated   = "created"
	ActionUpdated   = "updated"
	ActionUnchanged = "unchanged"
)

// Change is what an Ensure function did to one stream, consumer or
// bucket; `jetfleet setup` prints them.
type Change struct {
	Kind   string // stream, consumer, bucket, object store
	Name   string // for a consumer: <stream>/<durable>
	Action string // ActionCreated, ActionUpdated or ActionUnchanged
	Detail string
}

func (c Change) String() string {
	s := fmt.Sprintf("%-9s %-12s %s", c.Action, c.Kind, c.Name)
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// ConsumerDef is a durable consumer of the contract and its stream.
type ConsumerDef struct {
	Stream string
	Config jetstream.ConsumerConfig
}

// BindConsumer returns the existing durable want.Durable on stream, or
// ErrNotSetUp when it does not exist and ErrConsumerConflict when it
// breaks the contract. It creates and changes nothing: a bind-only
// worker's user may read its consumer's info, not create it.
func BindConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: consumer %s on %s does not exist (an admin creates it: jetfleet setup --pipeline FILE)", ErrNotSetUp, want.Durable, stream)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s on %s: %w", want.Durable, stream, err)
	}
	if diffs := consumerConflicts(cons.CachedInfo().Config, want); len(diffs) > 0 {
		return nil, fmt.Errorf("%w: consumer %s on %s: %s (jetfleet setup --pipeline FILE makes it right)",
			ErrConsumerConflict, want.Durable, stream, strings.Join(diffs, "; "))
	}
	return cons, nil
}

// consumerConflicts lists what in have breaks the contract of want: what
// the consumer delivers and how it is acked. Limits an operator tunes
// (ack wait, max deliver, max ack pending) are the operator's.
func consumerConflicts(have, want jetstream.ConsumerConfig) []string {
	var d []string
	filters := func(c jetstream.ConsumerConfig) []string {
		if c.FilterSubject != "" {
			return []string{c.FilterSubject}
		}
		return slices.Sorted(slices.Values(c.FilterSubjects))
	}
	if h, w := filters(have), filters(want); !slices.Equal(h, w) {
		d = append(d, fmt.Sprintf("filter subjects %v, want %v", h, w))
	}
	if have.AckPolicy != want.AckPolicy {
		d = append(d, fmt.Sprintf("ack policy %s, want %s", have.AckPolicy, want.AckPolicy))
	}
	if have.DeliverSubject != "" {
		d = append(d, fmt.Sprintf("push consumer (deliver subject %s), want pull", have.DeliverSubject))
	}
	if want.MaxDeliver > 0 && have.MaxDeliver <= 0 {
		d = append(d, "unlimited deliveries: a poison message would never reach the dead-letter stream")
	}
	return d
}

// EnsureConsumer creates the durable consumer def or brings it up to
// date, and says which.
func EnsureConsumer(ctx context.Context, js jetstream.JetStream, def ConsumerDef) (Change, error) {
	change := Change{Kind: "consumer", Name: def.Stream + "/" + def.Config.Durable, Action: ActionUnchanged}
	var before *jetstream.ConsumerConfig
	if c, err := js.Consumer(ctx, def.Stream, def.Config.Durable); err == nil {
		cfg := c.CachedInfo().Config
		before = &cfg
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return change, fmt.Errorf("consumer %s: %w", change.Name, err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, def.Stream, def.Config)
	if err != nil {
		return change, fmt.Errorf("consumer %s: %w", change.Name, err)
	}
	switch after := c.CachedInfo().Config; {
	case before == nil:
		change.Action = ActionCreated
	case !reflect.DeepEqual(*before, after):
		change.Action = ActionUpdated
	}
	return change, nil
}

// BindBucket opens the existing key-value bucket, or reports ErrNotSetUp.
func BindBucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("%w: key-value bucket %s does not exist (an admin creates it: jetfleet setup --pipeline FILE)", ErrNotSetUp, bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// EnsureBucket is [EnsureKV], saying what it did.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, o StreamOptions) (Change, error) {
	change := Change{Kind: "bucket", Name: cfg.Bucket, Action: ActionUnchanged}
	before, err := bucketConfig(ctx, js, cfg.Bucket)
	if err != nil && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return change, err
	}
	o.BindOnly = false
	if _, err := EnsureKV(ctx, js, cfg, o); err != nil {
		return change, fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	after, err := bucketConfig(ctx, js, cfg.Bucket)
	switch {
	case err != nil:
		return change, err
	case before == nil:
		change.Action = ActionCreated
	case !reflect.DeepEqual(*before, *after):
		change.Action = ActionUpdated
	}
	return change, nil
}

func bucketConfig(ctx context.Context, js jetstream.JetStream, bucket string) (*jetstream.StreamConfig, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		return nil, err
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", bucket, err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, fmt.Errorf("bucket %s: no stream info", bucket)
	}
	cfg := bs.StreamInfo().Config
	return &cfg, nil
}

// EnsureObjectStore creates the object store cfg if it does not exist.
func EnsureObjectStore(ctx context.Context, js jetstream.JetStream, cfg jetstream.ObjectStoreConfig) (Change, error) {
	change := Change{Kind: "objects", Name: cfg.Bucket, Action: ActionUnchanged}
	_, err := js.ObjectStore(ctx, cfg.Bucket)
	if err == nil {
		return change, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return change, fmt.Errorf("object store %s: %w", cfg.Bucket, err)
	}
	if _, err := js.CreateObjectStore(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
		return change, fmt.Errorf("object store %s: %w", cfg.Bucket, err)
	}
	change.Action = ActionCreated
	return change, nil
}
