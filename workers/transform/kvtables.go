package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// KVTablesConfig configures [KVTables].
type KVTablesConfig struct {
	// JS is the JetStream context. Required.
	JS jetstream.JetStream
	// Tables are the lookup tables to hold. Required.
	Tables []string
	// Replicas of buckets created because they did not exist yet. Default 1.
	Replicas int
	// Logger gets table loads and updates.
	Logger zerolog.Logger
}

// KVTables holds lookup tables from their KV buckets in memory and keeps
// them current by watching the buckets. Row is safe for concurrent use.
type KVTables struct {
	cfg KVTablesConfig
	log zerolog.Logger

	mu   sync.RWMutex
	rows map[string]map[string]map[string]any // table -> key -> row

	svc startstop.Service
}

// NewKVTables checks cfg. It does no I/O.
func NewKVTables(cfg KVTablesConfig) (*KVTables, error) {
	if cfg.JS == nil {
		return nil, fmt.Errorf("%w: lookup tables: no JetStream context", workers.ErrInvalidConfig)
	}
	for _, t := range cfg.Tables {
		if err := subjects.ValidateToken("lookup table", t); err != nil {
			return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
		}
	}
	t := &KVTables{
		cfg:  cfg,
		log:  cfg.Logger.With().Str("component", "lookup-tables").Logger(),
		rows: map[string]map[string]map[string]any{},
		svc:  startstop.Service{Cause: workers.ErrStopped},
	}
	for _, name := range cfg.Tables {
		t.rows[name] = map[string]map[string]any{}
	}
	return t, nil
}

// Start opens (creating if needed) every table's bucket, loads its
// current rows and returns once all are in memory; watchers then apply
// later changes until Stop.
func (t *KVTables) Start(ctx context.Context) error {
	err := t.svc.Start(ctx, t.run)
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: lookup tables already started", workers.ErrInvalidConfig)
	}
	return err
}

func (t *KVTables) run(ctx context.Context, started func()) error {
	var watches []jetstream.KeyWatcher
	defer func() {
		for _, w := range watches {
			_ = w.Stop()
		}
	}()
	for _, name := range t.cfg.Tables {
		kv, err := openBucket(ctx, t.cfg.JS, name, t.cfg.Replicas)
		if err != nil {
			return err
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			return fmt.Errorf("watch lookup table %s: %w", name, err)
		}
		watches = append(watches, w)
		// The initial values end with a nil entry; wait for it so a record
		// never sees a half-loaded table.
		n := 0
	initial:
		for {
			select {
			case e, ok := <-w.Updates():
				if !ok {
					return fmt.Errorf("watch lookup table %s: closed while loading", name)
				}
				if e == nil {
					break initial
				}
				t.apply(name, e)
				n++
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if n == 0 {
			t.log.Warn().Str("table", name).Msg("lookup table is empty; load it with `jetfleet lookup load`")
		} else {
			t.log.Info().Str("table", name).Int("rows", n).Msg("lookup table loaded")
		}
	}
	started()
	var g errgroup.Group
	for i, w := range watches {
		g.Go(func() error {
			t.follow(ctx, t.cfg.Tables[i], w)
			return nil
		})
	}
	return g.Wait()
}

func (t *KVTables) follow(ctx context.Context, table string, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e != nil {
				t.apply(table, e)
				t.log.Debug().Str("table", table).Str("key", e.Key()).Str("op", e.Operation().String()).Msg("lookup row changed")
			}
		}
	}
}

func (t *KVTables) apply(table string, e jetstream.KeyValueEntry) {
	key, ok := subjects.ParseLookupKey(e.Key())
	if !ok {
		t.log.Warn().Str("table", table).Str("key", e.Key()).Msg("ignoring a key jetfleet did not write")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(t.rows[table], key)
		return
	}
	row, err := decodeRow(e.Value())
	if err != nil {
		t.log.Warn().Err(err).Str("table", table).Str("key", key).Msg("ignoring a row that is not a JSON object")
		return
	}
	t.rows[table][key] = row
}

func decodeRow(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		return nil, err
	}
	if row == nil {
		return nil, errors.New("null row")
	}
	return row, nil
}

// Row implements [Tables]. Rows are shared: callers must not modify them.
func (t *KVTables) Row(table, key string) (map[string]any, bool) {
	t.mu.RLock()
	row, ok := t.rows[table][key]
	t.mu.RUnlock()
	return row, ok
}

// Len is the number of rows of table held now.
func (t *KVTables) Len(table string) int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows[table])
}

// Stop ends the watchers and waits for them or ctx. It is idempotent and
// safe without Start.
func (t *KVTables) Stop(ctx context.Context) error { return t.svc.Stop(ctx) }

// Stopped is closed once started tables have stopped.
func (t *KVTables) Stopped() <-chan struct{} { return t.svc.Stopped() }

// openBucket opens a lookup table's bucket, creating an empty one if it
// does not exist yet, so the step can start before the table is loaded.
func openBucket(ctx context.Context, js jetstream.JetStream, table string, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, subjects.LookupBucket(table))
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open lookup table %s: %w", table, err)
	}
	kv, err = js.CreateKeyValue(ctx, subjects.LookupBucketConfig(table, replicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = js.KeyValue(ctx, subjects.LookupBucket(table)) // created concurrently by another replica
	}
	if err != nil {
		return nil, fmt.Errorf("create lookup table %s: %w", table, err)
	}
	return kv, nil
}
