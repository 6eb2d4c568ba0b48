package aggregate

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// builderBundle is a partitioned dataset's data dir: partition
// aggregators fed directly (no NATS), writing lake files as the fleet's
// do, and mart builders over it.
type builderBundle struct {
	t       *testing.T
	dataDir string
	log     zerolog.Logger
	parts   []*Aggregator
	seq     uint64
}

func setupBuilder(t *testing.T, partitions int) *builderBundle {
	t.Helper()
	b := &builderBundle{t: t, dataDir: t.TempDir(), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)}
	for p := range partitions {
		b.parts = append(b.parts, b.startPartition(p, hooks{}))
	}
	return b
}

func (b *builderBundle) startPartition(p int, h hooks) *Aggregator {
	b.t.Helper()
	agg, err := New(Config{
		DataDir: b.dataDir, Dataset: shopDataset(), MemoryLimit: "256MB", Threads: 1,
		FlushRecords: 1 << 40, FlushInterval: time.Hour, Logger: b.log, Partition: &Partition{Index: p},
	})
	require.NoError(b.t, err)
	agg.hooks = h
	require.NoError(b.t, agg.Start(b.t.Context()))
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = agg.Stop(ctx) // the lake flush of a test's crashed partition fails again
	})
	return agg
}

// commit commits orders to partition p's state.
func (b *builderBundle) commit(p int, orders []order) {
	b.t.Helper()
	batch := make([]workers.Record, len(orders))
	for i, o := range orders {
		data, err := json.Marshal(o)
		require.NoError(b.t, err)
		b.seq++
		batch[i] = workers.Record{Data: data, Seq: b.seq, Published: time.Now()}
	}
	rejected, err := b.parts[p].handleBatch(b.t.Context(), batch)
	require.NoError(b.t, err)
	require.Empty(b.t, rejected)
}

// add commits orders to partition p and flushes its lake.
func (b *builderBundle) add(p int, orders []order) {
	b.t.Helper()
	b.commit(p, orders)
	require.NoError(b.t, b.parts[p].Flush(b.t.Context()))
}

func (b *builderBundle) builder(h hooks, flushed func(kind, name string)) *MartBuilder {
	b.t.Helper()
	mb, err := NewMartBuilder(MartBuilderConfig{
		DataDir: b.dataDir, Dataset: shopDataset(), Marts: shopMarts(), Partitions: len(b.parts),
		MemoryLimit: "256MB", Threads: 1, FlushedFunc: flushed, Logger: b.log,
	})
	require.NoError(b.t, err)
	mb.agg.hooks = h
	return mb
}

// requireBuilt checks every mart and the lake against a batch computation
// over distinct, and that they are as fresh as the partitions.
func (b *builderBundle) requireBuilt(distinct []order) {
	b.t.Helper()
	requireMartsEqualBatch(b.t, b.dataDir, distinct)
	requireLakeEqual(b.t, b.dataDir, distinct)
	requireNoTempFiles(b.t, b.dataDir)
	pending, err := marts.Pending(b.dataDir)
	require.NoError(b.t, err)
	require.Empty(b.t, pending)
}

// fileID identifies a file's version: a rewrite renames a new inode in.
type fileID struct {
	ino   uint64
	mtime time.Time
}

// martFiles maps each data file of mart to its identity.
func martFiles(t *testing.T, dataDir, mart string) map[string]fileID {
	t.Helper()
	out := map[string]fileID{}
	dir := marts.MartPath(dataDir, mart)
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() || d.Name() != marts.DataFile {
			return nil
		}
		fi, err := d.Info()
		require.NoError(t, err)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = fileID{ino: fi.Sys().(*syscall.Stat_t).Ino, mtime: fi.ModTime()}
		return nil
	})
	require.NoError(t, err)
	return out
}

func orderDay(o order) string { return o.TS[:len("2026-10-01")] }

// TestMartBuilderIncremental adds lake rows of one day after a first
// build: the next build rewrites that day's daily_sales partition (and the
// unpartitioned customer_ltv) and leaves every other partition's file
// alone, and the marts equal a batch computation over the whole lake.
func TestMartBuilderIncremental(t *testing.T) {
	t.Parallel()
	b := setupBuilder(t, 2)
	distinct, _ := genOrders(11, 1200)
	late := orderDay(distinct[len(distinct)/2])
	var first, held []order
	for i, o := range distinct {
		if orderDay(o) == late && i%2 == 0 {
			held = append(held, o) // late records of a day already built
			continue
		}
		first = append(first, o)
	}
	require.NotEmpty(t, held)
	for i := range 4 { // several flushes: several files per partition and day
		var p0, p1 []order
		for j := i; j < len(first); j += 4 {
			if j%2 == 0 {
				p0 = append(p0, first[j])
			} else {
				p1 = append(p1, first[j])
			}
		}
		b.add(0, p0)
		b.add(1, p1)
	}

	var mu sync.Mutex
	flushed := map[string]int{}
	mb := b.builder(hooks{}, func(kind, name string) {
		mu.Lock()
		flushed[kind+":"+name]++
		mu.Unlock()
	})
	require.NoError(t, mb.Build(t.Context()))
	b.requireBuilt(first)
	before := martFiles(t, b.dataDir, "daily_sales")
	days := map[string]bool{}
	for _, o := range first {
		days[orderDay(o)] = true
	}
	require.Len(t, before, len(days), "a partition per day")

	// Nothing new: the build is skipped, no file is touched.
	require.NoError(t, mb.Build(t.Context()))
	require.Equal(t, before, martFiles(t, b.dataDir, "daily_sales"))

	b.add(1, held)
	mu.Lock()
	clear(flushed)
	mu.Unlock()
	require.NoError(t, mb.Build(t.Context()))
	b.requireBuilt(distinct)
	after := martFiles(t, b.dataDir, "daily_sales")
	require.Len(t, after, len(days))
	for part, id := range before {
		if strings.Contains(part, "day="+late) {
			require.NotEqual(t, id, after[part], "the late day %s is rewritten", part)
		} else {
			require.Equal(t, id, after[part], "partition %s untouched", part)
		}
	}
	mu.Lock()
	require.Equal(t, map[string]int{"mart:daily_sales": 1, "mart:customer_ltv": 1, "lake:orders": 1}, flushed)
	mu.Unlock()
}

// TestMartBuilderRewrittenAndDeletedLakeFiles: a partition's lake flush
// redone after a crash rewrites its files with more rows under the same
// names; a user deletes lake files. Both give the marts of a batch
// computation over what the lake holds.
func TestMartBuilderRewrittenAndDeletedLakeFiles(t *testing.T) {
	t.Parallel()
	b := setupBuilder(t, 2)
	distinct, _ := genOrders(12, 900)
	third := len(distinct) / 3
	b.add(0, distinct[:third])

	// Partition 1's lake flush crashes after renaming its files.
	var crashing atomic.Bool
	crashing.Store(true)
	b.parts[1].hooks.beforeFlushCommit = func(string) error {
		if crashing.Load() {
			return errCrash
		}
		return nil
	}
	b.commit(1, distinct[third:2*third])
	require.ErrorIs(t, b.parts[1].Flush(t.Context()), errCrash)
	lakeDir := marts.LakePath(b.dataDir, "orders")
	firstFiles, err := filepath.Glob(filepath.Join(lakeDir, "*", "data-p1-*.parquet"))
	require.NoError(t, err)
	require.NotEmpty(t, firstFiles)
	sizes := map[string]int64{}
	for _, f := range firstFiles {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		sizes[f] = fi.Size()
	}

	mb := b.builder(hooks{}, nil)
	require.NoError(t, mb.Build(t.Context()))
	requireMartsEqualBatch(t, b.dataDir, distinct[:2*third])

	// The redone flush writes the same file names with the records
	// committed since as well.
	crashing.Store(false)
	b.add(1, distinct[2*third:])
	again, err := filepath.Glob(filepath.Join(lakeDir, "*", "data-p1-*.parquet"))
	require.NoError(t, err)
	require.Subset(t, again, firstFiles, "the same file names, rewritten")
	grown := 0
	for _, f := range firstFiles {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		if fi.Size() != sizes[f] {
			grown++
		}
	}
	require.Positive(t, grown, "some files were rewritten with more rows")
	require.NoError(t, mb.Build(t.Context()))
	b.requireBuilt(distinct)

	// A user deletes one day's lake files and one more file.
	days, err := filepath.Glob(filepath.Join(lakeDir, "date=*"))
	require.NoError(t, err)
	require.Greater(t, len(days), 3)
	gone := map[string]bool{}
	db, err := openDuckDB("", nil)
	require.NoError(t, err)
	defer db.Close()
	remove := func(file string) {
		rows, err := db.Query("SELECT order_id FROM read_parquet(?)", file)
		require.NoError(t, err)
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			gone[id] = true
		}
		require.NoError(t, rows.Err())
		rows.Close()
		require.NoError(t, os.Remove(file))
	}
	dayFiles, err := filepath.Glob(filepath.Join(days[2], "*.parquet"))
	require.NoError(t, err)
	for _, f := range dayFiles {
		remove(f)
	}
	others, err := filepath.Glob(filepath.Join(lakeDir, "*", "data-p0-*.parquet"))
	require.NoError(t, err)
	for _, f := range others {
		if filepath.Dir(f) != days[2] {
			remove(f)
			break
		}
	}
	var kept []order
	for _, o := range distinct {
		if !gone[o.OrderID] {
			kept = append(kept, o)
		}
	}
	require.Less(t, len(kept), len(distinct))
	require.NoError(t, mb.Build(t.Context()))
	requireMartsEqualBatch(t, b.dataDir, kept)
	requireLakeEqual(t, b.dataDir, kept)
	_, err = os.Stat(filepath.Join(marts.MartPath(b.dataDir, "daily_sales"), "day="+strings.TrimPrefix(filepath.Base(days[2]), "date=")))
	require.ErrorIs(t, err, os.ErrNotExist, "the emptied day's partition is removed")
}

// TestMartBuilderCrash stops a build at the points that matter; a new
// builder (another process, or this one restarted) finishes the marts.
func TestMartBuilderCrash(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		h    hooks
	}{
		{"between ingest commit and mart flush", hooks{afterCommit: func() error { return errCrash }}},
		{"between Parquet write and rename", hooks{beforeRename: func(output, _ string) error {
			if output == "daily_sales" {
				return errCrash
			}
			return nil
		}}},
		{"between rename and flush commit", hooks{beforeFlushCommit: func(output string) error {
			if output == "customer_ltv" {
				return errCrash
			}
			return nil
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupBuilder(t, 2)
			distinct, _ := genOrders(13, 600)
			half := len(distinct) / 2
			b.add(0, distinct[:half/2])
			b.add(1, distinct[half/2:half])
			require.NoError(t, b.builder(hooks{}, nil).Build(t.Context()))
			b.add(0, distinct[half:])

			require.ErrorIs(t, b.builder(tc.h, nil).Build(t.Context()), errCrash)
			require.NoError(t, b.builder(hooks{}, nil).Build(t.Context()))
			b.requireBuilt(distinct)
		})
	}
}

// TestMartBuilderStartsFromAnyState: a data dir whose builder state is
// missing (made by an older builder, or deleted) is read whole, and mart
// partitions on disk that the lake has no rows for are removed.
func TestMartBuilderStartsFromAnyState(t *testing.T) {
	t.Parallel()
	b := setupBuilder(t, 2)
	distinct, _ := genOrders(14, 500)
	b.add(0, distinct[:300])
	require.NoError(t, b.builder(hooks{}, nil).Build(t.Context()))
	b.add(1, distinct[300:])
	for _, f := range []string{"", ".wal"} {
		err := os.Remove(marts.MartBuilderStateFile(b.dataDir, "orders") + f)
		if !os.IsNotExist(err) {
			require.NoError(t, err)
		}
	}
	stale := filepath.Join(marts.MartPath(b.dataDir, "daily_sales"), "day=1999-01-01", marts.DataFile)
	require.NoError(t, os.MkdirAll(filepath.Dir(stale), 0o755))
	src := filepath.Join(marts.MartPath(b.dataDir, "daily_sales"), "day="+orderDay(distinct[0]), marts.DataFile)
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(stale, data, 0o644))

	require.NoError(t, b.builder(hooks{}, nil).Build(t.Context()))
	b.requireBuilt(distinct)
	_, err = os.Stat(stale)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// TestMartBuildersTakeTurns runs two builders (as of two processes) on
// one data dir while the partitions keep writing: they share the builder
// state one at a time, and the marts end exact.
func TestMartBuildersTakeTurns(t *testing.T) {
	t.Parallel()
	b := setupBuilder(t, 2)
	distinct, _ := genOrders(15, 800)
	builders := []*MartBuilder{b.builder(hooks{}, nil), b.builder(hooks{}, nil)}
	for _, mb := range builders {
		require.NoError(t, mb.Start(t.Context()))
	}
	for i := 0; i < len(distinct); i += 100 {
		b.add(i/100%2, distinct[i:i+100])
		for _, mb := range builders {
			mb.Kick()
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, mb := range builders {
		require.NoError(t, mb.Stop(ctx))
		<-mb.Stopped()
	}
	b.requireBuilt(distinct)
}
