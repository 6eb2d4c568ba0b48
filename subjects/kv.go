package subjects

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// FleetBucket is the JetStream key-value bucket that holds fleet state:
// the last heartbeat of every worker (with a per-key TTL, so a vanished
// worker ages out even while no supervisor runs), recently gone workers,
// the supervisors themselves, mart summaries and replay markers.
const FleetBucket = "jf_fleet"

// Key prefixes of the fleet bucket. Keys are dot-separated tokens.
const (
	KeyPrefixWorker     = "hb"     // hb.<step>.<worker>: live workers
	KeyPrefixGone       = "gone"   // gone.<step>.<worker>: dead or stopped workers, kept a while
	KeyPrefixSupervisor = "sup"    // sup.<id>: running supervisors
	KeyPrefixRate       = "rate"   // rate.<consumer>: throughput over the last minute
	KeyPrefixReplayed   = "replay" // replay.<dlq seq>: dead letters already replayed
	KeyMarts            = "marts"  // mart summaries as last reported by a supervisor
)

// KeyWorker is the key of a live worker's last heartbeat.
func KeyWorker(step, worker string) string { return join(KeyPrefixWorker, step, worker) }

// KeyGone is the key of a worker that stopped or died.
func KeyGone(step, worker string) string { return join(KeyPrefixGone, step, worker) }

// KeySupervisor is the key a supervisor announces itself under.
func KeySupervisor(id string) string { return join(KeyPrefixSupervisor, id) }

// KeyRate is the key of a consumer's recent throughput.
func KeyRate(consumer string) string { return join(KeyPrefixRate, consumer) }

// KeyReplayed marks the dead letter at dlqSeq as replayed.
func KeyReplayed(dlqSeq uint64) string {
	return join(KeyPrefixReplayed, strconv.FormatUint(dlqSeq, 10))
}

// KeyPut is the subject a value for key is published on to write it
// with JetStream publish options (a per-message TTL, which the KV Put
// API does not take).
func KeyPut(key string) string { return "$KV." + FleetBucket + "." + key }

// FleetKV is the fleet bucket's configuration. Per-key TTLs need limit
// markers; keys without a TTL (replay markers, marts) stay until
// replaced.
func FleetKV(o StreamOptions) jetstream.KeyValueConfig {
	o.setDefaults()
	return jetstream.KeyValueConfig{
		Bucket:         FleetBucket,
		Description:    "jetfleet: fleet state (heartbeats, supervisors, replays)",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       o.Replicas,
		LimitMarkerTTL: time.Minute,
	}
}
