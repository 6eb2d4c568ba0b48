package transform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/pipeline"
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
	// Inline are the tables whose rows the pipeline file gives inline:
	// Start writes them into their bucket when it holds no row, so a
	// worker needs no separate `jetfleet lookup load` for them.
	Inline []*pipeline.Lookup
	// LoadHintFunc says how to load an empty table, for [KVTables.Wait]'s
	// reason. Default: "jetfleet lookup load <table>".
	LoadHintFunc func(table string) string
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
	// changed is closed (and replaced) whenever a row changes: Wait's signal.
	changed chan struct{}
	// loaded holds the tables whose loaded marker was seen; lastChange is
	// when a table's rows last changed.
	loaded     map[string]bool
	lastChange map[string]time.Time

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
		cfg:        cfg,
		log:        cfg.Logger.With().Str("component", "lookup-tables").Logger(),
		rows:       map[string]map[string]map[string]any{},
		changed:    make(chan struct{}),
		loaded:     map[string]bool{},
		lastChange: map[string]time.Time{},
	}
	if t.cfg.LoadHintFunc == nil {
		t.cfg.LoadHintFunc = func(table string) string { return "jetfleet lookup load " + table }
	}
	for _, name := range cfg.Tables {
		t.rows[name] = map[string]map[string]any{}
	}
	return t, nil
}

// Start opens (creating if needed) every table's bucket, writes an
// inline table's rows into its bucket if it holds none, loads each
// table's current rows and returns once all are in memory; watchers then
// apply later changes until Stop. A table may be empty after Start (an
// external table not loaded yet): [KVTables.Wait] waits for it.
func (t *KVTables) Start(ctx context.Context) error {
	err := t.svc.Start(ctx, t.run)
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: lookup tables already started", workers.ErrInvalidConfig)
	}
	return err
}

func (t *KVTables) run(ctx context.Context, startedFunc func()) error {
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
		if l := t.inline(name); l != nil {
			if err := seedTable(ctx, kv, l, t.log); err != nil {
				return err
			}
		}
		w, err := t.load(ctx, name, kv)
		if w != nil {
			watches = append(watches, w)
		}
		if err != nil {
			return err
		}
	}
	startedFunc()
	var g errgroup.Group
	for i, w := range watches {
		g.Go(func() error {
			t.follow(ctx, t.cfg.Tables[i], w)
			return nil
		})
	}
	return g.Wait()
}

// load watches a table's bucket and returns once the watcher has
// delivered every row the bucket held when it started. The watcher's
// end-of-initial-values marker alone is not enough: it is counted from the
// consumer's pending count, which can be short when the server started
// delivering before it answered (nats.go sends the marker early then), and
// a transform would then meet a half-loaded table and dead-letter records
// for rows that exist. So load also reads on until it has seen the
// bucket's last revision as of before the watch.
func (t *KVTables) load(ctx context.Context, name string, kv jetstream.KeyValue) (jetstream.KeyWatcher, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("lookup table %s: %w", name, err)
	}
	var last uint64
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok {
		last = bs.StreamInfo().State.LastSeq
	}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch lookup table %s: %w", name, err)
	}
	var seen uint64
	marker := false
	// A revision that left the bucket after Status (a purge) never comes:
	// past this, go on with what arrived and let the watcher catch up.
	straggle := time.NewTimer(time.Hour)
	defer straggle.Stop()
	for !marker || seen < last {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return w, fmt.Errorf("watch lookup table %s: closed while loading", name)
			}
			if e == nil {
				marker = true
				straggle.Reset(5 * time.Second)
				continue
			}
			t.apply(name, e)
			seen = max(seen, e.Revision())
		case <-straggle.C:
			t.log.Warn().Str("table", name).Uint64("revision", seen).Uint64("want", last).Msg("lookup table: the last revision did not arrive; going on with the rows that did")
			seen = last
		case <-ctx.Done():
			return w, ctx.Err()
		}
	}
	if n := t.Len(name); n > 0 {
		t.log.Info().Str("table", name).Int("rows", n).Msg("lookup table loaded")
	}
	return w, nil
}

// inline is table's inline definition, nil for an external table.
func (t *KVTables) inline(table string) *pipeline.Lookup {
	for _, l := range t.cfg.Inline {
		if l.Name == table && l.CSV == "" {
			return l
		}
	}
	return nil
}

// seedTable writes an inline table's rows into its bucket when the bucket
// holds no row. Each row is created only if its key is absent, so workers
// starting together write each row once, and a table loaded meanwhile
// (`jetfleet lookup load`) keeps its rows.
func seedTable(ctx context.Context, kv jetstream.KeyValue, l *pipeline.Lookup, log zerolog.Logger) error {
	if len(l.Rows) == 0 {
		return nil
	}
	st, err := kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("lookup %s: %w", l.Name, err)
	}
	if st.Values() > 0 {
		// Something was written: rows, or only the markers of deleted ones.
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return fmt.Errorf("lookup %s: list keys: %w", l.Name, err)
		}
		present := false
		for range keys.Keys() {
			present = true
		}
		if present {
			return nil
		}
	}
	created := 0
	for i, row := range l.Rows {
		key, data, err := encodeRow(l, i, row)
		if err != nil {
			return err
		}
		if _, err := kv.Create(ctx, key, data); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another worker created it first
			}
			return fmt.Errorf("lookup %s: create %s: %w", l.Name, key, err)
		}
		created++
	}
	log.Info().Str("table", l.Name).Int("rows", created).Msg("lookup table was empty: loaded its inline rows from the pipeline file")
	return markLoaded(ctx, kv, l, len(l.Rows))
}

// unmarkedQuiet is how long rows written without a loaded marker (by an
// older jetfleet, or `nats kv put`) must stay unchanged before a waiting
// step takes the table as loaded.
const unmarkedQuiet = 2 * time.Second

// Wait returns once every table of tables is loaded, or with ctx's error:
// its loaded marker was seen (every row of the load is in memory), or it
// has rows that have not changed for a while (a load that writes no
// marker). A table that gets its first row is not loaded yet: a step that
// started then would dead-letter records for the rows still on their way.
// While it waits it calls waitingFunc with the reason: the first table
// not loaded and how to load it. An inline table with no rows in the
// pipeline file has nothing to wait for.
func (t *KVTables) Wait(ctx context.Context, tables []string, waitingFunc func(reason string)) error {
	last := ""
	for {
		t.mu.RLock()
		changed := t.changed
		pending, rows, quietIn := "", 0, time.Duration(0)
		for _, name := range tables {
			if t.loaded[name] {
				continue
			}
			if l := t.inline(name); l != nil && len(l.Rows) == 0 {
				continue
			}
			rows = len(t.rows[name])
			if rows > 0 {
				if quietIn = unmarkedQuiet - time.Since(t.lastChange[name]); quietIn <= 0 {
					continue
				}
			}
			pending = name
			break
		}
		t.mu.RUnlock()
		if pending == "" {
			return nil
		}
		reason := fmt.Sprintf("lookup table %s is empty: load it with `%s`", pending, t.cfg.LoadHintFunc(pending))
		if rows > 0 {
			reason = fmt.Sprintf("lookup table %s is being loaded (%d rows so far)", pending, rows)
		}
		if reason != last {
			last = reason
			waitingFunc(reason)
		}
		if err := waitChange(ctx, changed, quietIn); err != nil {
			return err
		}
	}
}

// waitChange returns when changed is closed, after quiet if it is more
// than zero, or with ctx's error.
func waitChange(ctx context.Context, changed <-chan struct{}, quiet time.Duration) error {
	var after <-chan time.Time
	if quiet > 0 {
		timer := time.NewTimer(quiet)
		defer timer.Stop()
		after = timer.C
	}
	select {
	case <-changed:
	case <-after:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
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
	if e.Key() == subjects.LookupLoadedKey {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.loaded[table] = e.Operation() == jetstream.KeyValuePut
		close(t.changed)
		t.changed = make(chan struct{})
		return
	}
	key, ok := subjects.ParseLookupKey(e.Key())
	if !ok {
		t.log.Warn().Str("table", table).Str("key", e.Key()).Msg("ignoring a key jetfleet did not write")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	close(t.changed)
	t.changed = make(chan struct{})
	t.lastChange[table] = time.Now()
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
