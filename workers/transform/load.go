package transform

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
)

// LoadResult counts what [LoadTable] changed.
type LoadResult struct {
	Put     int // rows written
	Deleted int // keys removed because the new rows no longer have them
}

// LoadTable replaces the content of lookup table l's bucket with rows
// (creating the bucket if needed): every row is put under its key, and
// keys no longer present are deleted. Running workers see the change
// through their watchers. Loading the same rows twice changes nothing
// a reader can see.
func LoadTable(ctx context.Context, js jetstream.JetStream, l *pipeline.Lookup, rows []map[string]any, replicas int) (LoadResult, error) {
	var res LoadResult
	kv, err := openBucket(ctx, js, l.Name, replicas)
	if err != nil {
		return res, err
	}
	want := make(map[string]bool, len(rows))
	for i, row := range rows {
		key, data, err := encodeRow(l, i, row)
		if err != nil {
			return res, err
		}
		if _, err := kv.Put(ctx, key, data); err != nil {
			return res, fmt.Errorf("lookup %s: put %s: %w", l.Name, key, err)
		}
		want[key] = true
		res.Put++
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return res, fmt.Errorf("lookup %s: list keys: %w", l.Name, err)
	}
	var stale []string
	for k := range keys.Keys() {
		if !want[k] && k != subjects.LookupLoadedKey {
			stale = append(stale, k)
		}
	}
	for _, k := range stale {
		if err := kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return res, fmt.Errorf("lookup %s: delete %s: %w", l.Name, k, err)
		}
		res.Deleted++
	}
	return res, markLoaded(ctx, kv, l, res.Put)
}

// markLoaded puts the loaded marker after a table's rows: a watcher that
// applies it has every row written before it (a watch delivers in order).
func markLoaded(ctx context.Context, kv jetstream.KeyValue, l *pipeline.Lookup, rows int) error {
	data, _ := json.Marshal(struct {
		Rows int       `json:"rows"`
		At   time.Time `json:"at"`
	}{rows, time.Now().UTC()})
	if _, err := kv.Put(ctx, subjects.LookupLoadedKey, data); err != nil {
		return fmt.Errorf("lookup %s: mark loaded: %w", l.Name, err)
	}
	return nil
}

// encodeRow is row number i of table l as its bucket stores it: under
// the key of its key column, as JSON.
func encodeRow(l *pipeline.Lookup, i int, row map[string]any) (key string, data []byte, err error) {
	kval, ok := row[l.Key]
	if !ok || kval == nil {
		return "", nil, fmt.Errorf("lookup %s: row %d has no key column %s", l.Name, i, l.Key)
	}
	data, err = json.Marshal(row)
	if err != nil {
		return "", nil, fmt.Errorf("lookup %s: row %d: %w", l.Name, i, err)
	}
	return subjects.LookupKey(pipeline.KeyString(kval)), data, nil
}

// LoadTables loads every lookup table of spec from its inline rows or CSV
// file. `jetfleet dev` calls it at start-up so the demo runs with no
// separate load step.
func LoadTables(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec, replicas int) error {
	for _, l := range spec.Lookups {
		rows, err := l.ReadRows()
		if err != nil {
			return err
		}
		if _, err := LoadTable(ctx, js, l, rows, replicas); err != nil {
			return err
		}
	}
	return nil
}
