package subjects

import (
	"context"
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
	KeyPrefixWorker     = "hb"       // hb.<step>.<worker>: live workers
	KeyPrefixGone       = "gone"     // gone.<step>.<worker>: dead or stopped workers, kept a while
	KeyPrefixSupervisor = "sup"      // sup.<id>: running supervisors
	KeyPrefixRate       = "rate"     // rate.<consumer>: throughput over the last minute
	KeyPrefixReplayed   = "replay"   // replay.<dlq seq>: dead letters already replayed
	KeyMarts            = "marts"    // mart summaries as last reported by a supervisor
	KeyProgress         = "progress" // aggregator progress (committed records, duplicates) per dataset
	KeyPrefixLedger     = "ledger"   // ledger.<stream>: records counted in JF_INGEST or JF_DLQ
	KeyPrefixLost       = "lost"     // lost.<stream>.<seq>: a message given up on that could not be dead-lettered
)

// KeyLedger is the key of a stream's record count (the supervisor's ledger).
func KeyLedger(stream string) string { return join(KeyPrefixLedger, stream) }

// KeyLost marks the message at seq of stream as in no stream, mart or
// dead letter: JetStream gave up on it and it could not be dead-lettered.
func KeyLost(stream string, seq uint64) string {
	return join(KeyPrefixLost, stream, strconv.FormatUint(seq, 10))
}

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

// EnsureKV creates bucket cfg or brings an existing one up to date. With
// o.Replicas unset (0) an existing bucket keeps its replica count: a
// process started without a replica flag must not shrink a cluster's
// replicated bucket to one copy.
// A server too old for the contract is refused first ([CheckServer]).
func EnsureKV(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, o StreamOptions) (jetstream.KeyValue, error) {
	if err := CheckServer(js.Conn()); err != nil {
		return nil, err
	}
	if o.BindOnly {
		return BindBucket(ctx, js, cfg.Bucket)
	}
	if o.Replicas == 0 {
		if kv, err := js.KeyValue(ctx, cfg.Bucket); err == nil {
			if st, err := kv.Status(ctx); err == nil {
				if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
					cfg.Replicas = bs.StreamInfo().Config.Replicas
				}
			}
		}
	}
	return js.CreateOrUpdateKeyValue(ctx, cfg)
}
