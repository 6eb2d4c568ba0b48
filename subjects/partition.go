package subjects

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// The clean stage is partitioned by record key so that keyed state (the
// aggregator's) can be divided between replicas; see docs/scale-out.md.
//
// A publisher appends a token-safe hash of the record's key to the clean
// subject, jf.clean.<dataset>.<keytoken>, and the JF_CLEAN stream's subject
// transform (a NATS mapping with the server's partition function) stores it
// as jf.clean.<dataset>.<partition>.<keytoken>. Consumers of a whole
// dataset filter jf.clean.<dataset> and jf.clean.<dataset>.>; an aggregator
// partition filters jf.clean.<dataset>.<partition>.>.

// DefaultPartitions is the number of partitions of the clean stage unless
// StreamOptions.Partitions says otherwise.
const DefaultPartitions = 8

// MaxPartitions bounds the partition count: each partition is a durable
// consumer and a DuckDB state per dataset.
const MaxPartitions = 1024

// KeyBuckets is how many distinct key tokens there are. The server keeps
// state per distinct subject of a stream for as long as the stream keeps
// its messages, so a token per key would grow nats-server's memory with
// every key ever seen; keys hashed into a fixed set of buckets keep the
// clean stage at KeyBuckets subjects per dataset. It is part of the wire
// contract: changing it moves keys between partitions.
const KeyBuckets = 4096

// KeyToken is the subject token of a record key: its bucket, the FNV-1a
// 64-bit hash of the key modulo KeyBuckets, as 3 hex digits. The same key
// always gives the same token, so it always lands in the same partition.
func KeyToken(key string) string { return bucketTokens[KeyBucket(key)] }

// KeyBucket is the bucket of a record key that KeyToken writes: the
// FNV-1a 64-bit hash of the key modulo KeyBuckets.
func KeyBucket(key string) int {
	h := uint64(14695981039346656037) // FNV-1a 64 offset basis
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211 // FNV-1a 64 prime
	}
	return int(h % KeyBuckets)
}

// BucketToken is the key token of bucket b (0 <= b < KeyBuckets).
func BucketToken(b int) string { return bucketTokens[b] }

// bucketTokens are the tokens of every bucket, made once: a record's
// token costs no formatting.
var bucketTokens = func() (t [KeyBuckets]string) {
	for b := range t {
		t[b] = fmt.Sprintf("%03x", b)
	}
	return t
}()

// CleanKey is the subject a record of dataset with the given key token is
// published to; the stream maps it into its partition.
func CleanKey(dataset, keyToken string) string {
	return join(Root, string(KindClean), dataset, keyToken)
}

// PartitionOf is the partition the server's partition function puts a
// key token in: FNV-1a 32 of the token modulo n, exactly what
// {{partition(n,2)}} computes (a test holds the two together).
func PartitionOf(keyToken string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(keyToken))
	return int(h.Sum32() % uint32(n))
}

// CleanPartition is the stored subject of a record in partition p.
func CleanPartition(dataset string, p int, keyToken string) string {
	return join(Root, string(KindClean), dataset, strconv.Itoa(p), keyToken)
}

// CleanFilters are the filter subjects of a consumer of every clean record
// of dataset: the partitioned subjects, jf.clean.<ds>.>. A record
// published without a key token (jf.clean.<ds>) reaches them once the
// rekey step has published it again with its token. One filter, because
// nats-server serves consumers with several filter subjects far slower.
func CleanFilters(dataset string) []string {
	return []string{join(Clean(dataset), ">")}
}

// PartitionFilters are the filter subjects of partition p of dataset.
func PartitionFilters(dataset string, p int) []string {
	return []string{join(Clean(dataset), strconv.Itoa(p), ">")}
}

// cleanTransform is JF_CLEAN's subject transform for n partitions:
// jf.clean.<ds>.<keytoken> -> jf.clean.<ds>.<partition>.<keytoken>.
// Subjects of other shapes (already partitioned, or without a key token)
// do not match and are stored as published.
func cleanTransform(n int) *jetstream.SubjectTransformConfig {
	return &jetstream.SubjectTransformConfig{
		Source:      join(Root, string(KindClean), "*", "*"),
		Destination: fmt.Sprintf("%s.%s.{{wildcard(1)}}.{{partition(%d,2)}}.{{wildcard(2)}}", Root, KindClean, n),
	}
}

var partitionDest = regexp.MustCompile(`\{\{\s*partition\(\s*(\d+)\s*,\s*2\s*\)\s*\}\}`)

// PartitionsOf reads the partition count from a JF_CLEAN configuration;
// 0 means the stream is not partitioned.
func PartitionsOf(cfg jetstream.StreamConfig) int {
	if cfg.SubjectTransform == nil {
		return 0
	}
	m := partitionDest.FindStringSubmatch(cfg.SubjectTransform.Destination)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// PartitionConsumerName is the durable consumer of partition p of step on
// dataset: "<step>_<dataset>_p<p>". Its metadata names step, dataset and
// partition, which is what status reads.
func PartitionConsumerName(step, dataset string, p int) string {
	return ConsumerName(step, dataset) + "_p" + strconv.Itoa(p)
}

// StepConsumerNames are the durable consumers of step on dataset: one, or
// for the aggregate step, one per partition of a clean stage of n
// partitions.
func StepConsumerNames(step Step, dataset string, n int) []string {
	if step != StepAggregate {
		return []string{ConsumerName(step.Name, dataset)}
	}
	names := make([]string, max(n, 1))
	for p := range names {
		names[p] = PartitionConsumerName(step.Name, dataset, p)
	}
	return names
}

// MetaPartition is the consumer metadata key of a partition consumer.
const MetaPartition = "jf.partition"

// PartitionConsumer is the durable pull consumer of partition p (of n) of
// step on dataset. Only steps consuming the clean stage are partitioned.
func PartitionConsumer(step Step, dataset string, p, n int, o ConsumerOptions) (jetstream.ConsumerConfig, error) {
	if step.Input != KindClean {
		return jetstream.ConsumerConfig{}, fmt.Errorf("%w: step %s does not consume the clean stage; only it is partitioned", ErrInvalidToken, step.Name)
	}
	if n < 1 || n > MaxPartitions || p < 0 || p >= n {
		return jetstream.ConsumerConfig{}, fmt.Errorf("%w: partition %d of %d", ErrInvalidPartition, p, n)
	}
	cfg, err := Consumer(step, dataset, o)
	if err != nil {
		return cfg, err
	}
	cfg.Durable = PartitionConsumerName(step.Name, dataset, p)
	cfg.Description = fmt.Sprintf("jetfleet %s step for dataset %s, partition %d of %d", step.Name, dataset, p, n)
	cfg.FilterSubject = PartitionFilters(dataset, p)[0]
	cfg.Metadata[MetaPartition] = strconv.Itoa(p)
	return cfg, nil
}

// ParsePartitions parses a partition set such as "0-3,6": ranges and
// single partitions, each below n. An empty string means all n.
func ParsePartitions(s string, n int) ([]int, error) {
	if n < 1 || n > MaxPartitions {
		return nil, fmt.Errorf("%w: %d partitions", ErrInvalidPartition, n)
	}
	if strings.TrimSpace(s) == "" {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	seen := make([]bool, n)
	var out []int
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, "-")
		a, errA := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var errB error
		if isRange {
			b, errB = strconv.Atoi(strings.TrimSpace(hi))
		}
		if errA != nil || errB != nil || a < 0 || b < a {
			return nil, fmt.Errorf("%w: %q is not a partition or range (use e.g. 0-3,6)", ErrInvalidPartition, item)
		}
		if b >= n {
			return nil, fmt.Errorf("%w: partition %d: the clean stage has %d partitions (0-%d)", ErrInvalidPartition, b, n, n-1)
		}
		for p := a; p <= b; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}
