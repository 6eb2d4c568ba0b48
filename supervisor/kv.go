package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// ensureFleetKV creates or binds the fleet bucket; without a replica
// count an existing bucket keeps its own.
func ensureFleetKV(ctx context.Context, js jetstream.JetStream, o subjects.StreamOptions) (jetstream.KeyValue, error) {
	kv, err := subjects.EnsureKV(ctx, js, subjects.FleetKV(o), o)
	if err != nil {
		return nil, fmt.Errorf("fleet bucket %s: %w", subjects.FleetBucket, err)
	}
	return kv, nil
}

// openFleetKV binds the fleet bucket without creating it; nil if absent.
func openFleetKV(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, subjects.FleetBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fleet bucket %s: %w", subjects.FleetBucket, err)
	}
	return kv, nil
}

// putTTL writes key with a per-key TTL (0: no TTL). TTLs under a second
// are raised to one, the server's minimum.
func putTTL(ctx context.Context, js jetstream.JetStream, key string, v any, ttl time.Duration) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	var opts []jetstream.PublishOpt
	if ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(max(ttl.Round(time.Second), time.Second)))
	}
	if _, err := js.Publish(ctx, subjects.KeyPut(key), data, opts...); err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

// readAll returns the current values of every key under prefix (e.g.
// "hb"), keyed by the key.
func readAll(ctx context.Context, kv jetstream.KeyValue, prefix string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if kv == nil {
		return out, nil
	}
	w, err := kv.Watch(ctx, prefix+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read %s.>: %w", prefix, err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return out, nil
			}
			if e == nil { // end of the initial values
				return out, nil
			}
			out[e.Key()] = e.Value()
		case <-ctx.Done():
			return nil, fmt.Errorf("read %s.>: %w", prefix, ctx.Err())
		}
	}
}

// keyTokens splits a fleet key into its tokens after the prefix.
func keyTokens(key string) []string {
	t := strings.Split(key, ".")
	if len(t) < 2 {
		return nil
	}
	return t[1:]
}
