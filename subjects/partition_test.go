package subjects_test

import (
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// The server's partition function and PartitionOf must agree: the
// transform step groups bulk chunks by PartitionOf, the stream files them
// by {{partition(n,2)}}.
func TestCleanTransformMatchesPartitionOf(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	const n = 5
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{Partitions: n}))
	s, err := js.Stream(ctx, subjects.StreamClean)
	require.NoError(t, err)
	require.Equal(t, n, subjects.PartitionsOf(s.CachedInfo().Config))

	const keys = 200
	seen := map[int]bool{}
	for i := range keys {
		tok := subjects.KeyToken(fmt.Sprintf("order-%d", i))
		ack, err := js.Publish(ctx, subjects.CleanKey("orders", tok), []byte(`{}`))
		require.NoError(t, err)
		m, err := s.GetMsg(ctx, ack.Sequence)
		require.NoError(t, err)
		p := subjects.PartitionOf(tok, n)
		require.Equal(t, subjects.CleanPartition("orders", p, tok), m.Subject, "key %d", i)
		parsed, err := subjects.Parse(m.Subject)
		require.NoError(t, err)
		require.True(t, parsed.Partitioned)
		require.Equal(t, p, parsed.Partition)
		seen[p] = true
	}
	require.Len(t, seen, n, "200 keys reach every partition")

	// Without a key token a record is stored as published, for the rekey
	// step to publish again with its token.
	ack, err := js.Publish(ctx, subjects.Clean("orders"), []byte(`{}`))
	require.NoError(t, err)
	m, err := s.GetMsg(ctx, ack.Sequence)
	require.NoError(t, err)
	require.Equal(t, subjects.Clean("orders"), m.Subject)

	count := func(cfg jetstream.ConsumerConfig) uint64 {
		c, err := js.CreateOrUpdateConsumer(ctx, subjects.StreamClean, cfg)
		require.NoError(t, err)
		return c.CachedInfo().NumPending
	}
	var sum uint64
	for p := range n {
		cfg, err := subjects.PartitionConsumer(subjects.StepAggregate, "orders", p, n, subjects.ConsumerOptions{})
		require.NoError(t, err)
		sum += count(cfg)
	}
	require.Equal(t, uint64(keys), sum, "the partitions divide every keyed record between them")
	all, err := subjects.Consumer(subjects.StepAlert, "orders", subjects.ConsumerOptions{})
	require.NoError(t, err)
	require.Equal(t, uint64(keys), count(all), "a whole-dataset consumer sees every keyed record")
	rekey, err := subjects.Consumer(subjects.StepRekey, "orders", subjects.ConsumerOptions{})
	require.NoError(t, err)
	require.Equal(t, subjects.Clean("orders"), rekey.FilterSubject)
	require.Equal(t, uint64(1), count(rekey), "the record without a key token is the rekey step's alone")
}

func TestEnsureRefusesNewPartitionCount(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{Partitions: 4}))
	err := subjects.Ensure(ctx, js, subjects.StreamOptions{Partitions: 8})
	require.ErrorIs(t, err, subjects.ErrStreamConflict)
	require.Contains(t, err.Error(), "4 key partitions, want 8")
	s, err := js.Stream(ctx, subjects.StreamClean)
	require.NoError(t, err)
	require.Equal(t, 4, subjects.PartitionsOf(s.CachedInfo().Config), "the stream keeps its partitions")
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}), "no count asked for: join the stream as it is")
}

func TestEnsureRefusesUnpartitionedCleanStream(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	ctx := t.Context()
	cfg := subjects.Streams(subjects.StreamOptions{})[2]
	require.Equal(t, subjects.StreamClean, cfg.Name)
	cfg.SubjectTransform = nil // as jetfleet created it before partitioning
	_, err := js.CreateStream(ctx, cfg)
	require.NoError(t, err)
	err = subjects.Ensure(ctx, js, subjects.StreamOptions{})
	require.ErrorIs(t, err, subjects.ErrStreamConflict)
	require.Contains(t, err.Error(), "predates partitioning")
}

func TestParsePartitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want []int
		err  string
	}{
		{"", 3, []int{0, 1, 2}, ""},
		{"0-3", 8, []int{0, 1, 2, 3}, ""},
		{"6, 1-2,2", 8, []int{6, 1, 2}, ""},
		{"8", 8, nil, "has 8 partitions"},
		{"3-1", 8, nil, "not a partition"},
		{"a", 8, nil, "not a partition"},
		{"0", 0, nil, "0 partitions"},
	}
	for _, tt := range tests {
		got, err := subjects.ParsePartitions(tt.in, tt.n)
		if tt.err != "" {
			require.ErrorIs(t, err, subjects.ErrInvalidPartition, tt.in)
			require.ErrorContains(t, err, tt.err)
			continue
		}
		require.NoError(t, err, tt.in)
		require.Equal(t, tt.want, got, tt.in)
	}
}

func TestPartitionConsumer(t *testing.T) {
	t.Parallel()
	cfg, err := subjects.PartitionConsumer(subjects.StepAggregate, "orders", 3, 8, subjects.ConsumerOptions{})
	require.NoError(t, err)
	require.Equal(t, "aggregate_orders_p3", cfg.Durable)
	step, ds, ok := subjects.ParseConsumerName(cfg.Durable)
	require.True(t, ok)
	require.Equal(t, []string{"aggregate", "orders"}, []string{step, ds}, "advisories name the partition consumer")
	_, ds, _ = subjects.ParseConsumerName("validate_orders_p3")
	require.Equal(t, "orders_p3", ds, "only clean-stage steps are partitioned")
	require.Equal(t, "jf.clean.orders.3.>", cfg.FilterSubject)
	require.Empty(t, cfg.FilterSubjects, "one filter: the server's fast path")
	require.Equal(t, "3", cfg.Metadata[subjects.MetaPartition])
	require.Equal(t, "orders", cfg.Metadata[subjects.MetaDataset])
	cfg, err = subjects.PartitionConsumer(subjects.StepAggregate, "orders", 0, 8, subjects.ConsumerOptions{})
	require.NoError(t, err)
	require.Equal(t, "jf.clean.orders.0.>", cfg.FilterSubject)
	require.Empty(t, cfg.FilterSubjects)
	step, ds, ok = subjects.ParseConsumerName(subjects.ConsumerName(subjects.StepRekey.Name, "orders"))
	require.True(t, ok)
	require.Equal(t, []string{"rekey", "orders"}, []string{step, ds})
	_, err = subjects.PartitionConsumer(subjects.StepAggregate, "orders", 8, 8, subjects.ConsumerOptions{})
	require.ErrorIs(t, err, subjects.ErrInvalidPartition)
	_, err = subjects.PartitionConsumer(subjects.StepValidate, "orders", 0, 8, subjects.ConsumerOptions{})
	require.Error(t, err)
	require.Equal(t, []string{"validate_orders"}, subjects.StepConsumerNames(subjects.StepValidate, "orders", 3))
	require.Equal(t, []string{"aggregate_orders_p0", "aggregate_orders_p1", "aggregate_orders_p2"}, subjects.StepConsumerNames(subjects.StepAggregate, "orders", 3))
}

// Key tokens are buckets: however many keys, the clean stage has at most
// KeyBuckets subjects per dataset (the server keeps state per subject),
// and the buckets still spread keys evenly over the partitions.
func TestKeyTokensAreBoundedBuckets(t *testing.T) {
	t.Parallel()
	const keys = 200_000
	tokens := map[string]bool{}
	perPartition := make([]int, subjects.DefaultPartitions)
	for i := range keys {
		tok := subjects.KeyToken(fmt.Sprintf("order-%d", i))
		require.NoError(t, subjects.ValidateToken("key token", tok))
		require.Len(t, tok, 3)
		tokens[tok] = true
		perPartition[subjects.PartitionOf(tok, subjects.DefaultPartitions)]++
	}
	require.Len(t, tokens, subjects.KeyBuckets, "200k keys fill every bucket and no more")
	for p, n := range perPartition {
		require.InDelta(t, keys/subjects.DefaultPartitions, n, keys/subjects.DefaultPartitions/10, "partition %d within 10%% of an even share", p)
	}
}

// KeyToken is the FNV-1a 64-bit hash of the key modulo KeyBuckets, in 3
// hex digits: the wire contract, whatever computes it.
func TestKeyTokenIsFNV(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"", "o-1", "order-12345", "Zoë 🚀", "\x00\xff"} {
		h := fnv.New64a()
		_, _ = h.Write([]byte(key))
		want := fmt.Sprintf("%03x", h.Sum64()%subjects.KeyBuckets)
		require.Equal(t, want, subjects.KeyToken(key), "key %q", key)
		require.Equal(t, want, subjects.BucketToken(subjects.KeyBucket(key)))
	}
}
