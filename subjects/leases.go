package subjects

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PartitionBucket is the JetStream key-value bucket in which aggregator
// replicas claim partitions: a lease is a key whose value names its
// owner, created with Create (only if absent) and renewed with Update on
// the revision its owner last wrote (compare-and-set). The bucket's max
// age is the lease TTL: an owner that dies stops renewing, its key ages
// out, and another replica's Create takes the partition over.
const PartitionBucket = "jf_partitions"

// KeyPartitionLease is the lease key of partition p of dataset.
func KeyPartitionLease(dataset string, p int) string {
	return join(dataset, "p"+strconv.Itoa(p))
}

// KeyPartitionMember is the presence key of a replica serving dataset;
// replicas count each other by it to take a fair share of partitions.
func KeyPartitionMember(dataset, owner string) string { return join(dataset, "m", owner) }

// PartitionMembers is the key filter of every replica serving dataset.
func PartitionMembers(dataset string) string { return join(dataset, "m", "*") }

// PartitionsKV is the lease bucket's configuration; ttl is the lease
// time. Every replica must use the same ttl.
func PartitionsKV(o StreamOptions, ttl time.Duration) jetstream.KeyValueConfig {
	o.setDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      PartitionBucket,
		Description: "jetfleet: aggregator partition leases",
		History:     1,
		TTL:         ttl,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
}
