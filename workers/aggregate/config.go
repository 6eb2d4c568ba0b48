package aggregate

import (
	"fmt"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Column is one column of a dataset's clean records.
type Column struct {
	Name string
	// Type is a DuckDB type: VARCHAR, DOUBLE, BIGINT, INTEGER, BOOLEAN,
	// TIMESTAMPTZ, TIMESTAMP, DATE, JSON, DECIMAL(p,s), ...
	Type string
}

// DatasetConfig describes a dataset's clean records.
type DatasetConfig struct {
	Name string
	// Key is the field records are de-duplicated on: a key seen before,
	// however long ago, counts once.
	Key    string
	Schema []Column
}

// Mart is a table kept fresh from a dataset: DuckDB SQL over a view named
// after the dataset with its schema columns.
type Mart struct {
	Name    string
	Dataset string
	// SQL is "SELECT ... FROM <dataset> ... GROUP BY ...".
	SQL string
	// PartitionBy are output columns written as Hive partitions
	// (day=2026-10-01/); a flush rewrites only partitions that got records.
	PartitionBy []string
	// FlushRecords and FlushInterval: flush once this many records are
	// pending, or this long after the first pending one. Defaults from
	// Config.
	FlushRecords  int
	FlushInterval time.Duration
}

// Config configures an [Aggregator]: one dataset and its marts.
type Config struct {
	// DataDir holds state/, marts/ and lake/. Required.
	DataDir string
	// Dataset is the dataset consumed. Required.
	Dataset DatasetConfig
	// Marts computed from Dataset; marts of other datasets are ignored.
	Marts []Mart
	// Lake keeps the clean records as Parquet under lake/<dataset>/. On by
	// default; set NoLake to turn it off.
	NoLake bool
	// MemoryLimit is DuckDB's memory_limit ("512MB", "2GB"). Default 1GB.
	MemoryLimit string
	// Threads is DuckDB's thread count. Default: DuckDB's (all cores).
	Threads int
	// RecycleCommits is how many batches the state commits (plus a random
	// half of it) before the aggregator closes and reopens it, to give
	// back memory DuckDB keeps per commit (see defaultRecycleCommits).
	// Default 1000; negative: never.
	RecycleCommits int
	// FlushRecords and FlushInterval are the defaults of the marts' flush
	// policy, and the lake's policy. Default 50000 records, 1s.
	FlushRecords  int
	FlushInterval time.Duration
	// Logger gets the aggregator's log lines.
	Logger zerolog.Logger
	// Partition, when set, makes the aggregator the owner of one key
	// partition of the dataset: it keeps that partition's state and lake
	// files, and leaves the marts to a [MartBuilder] (docs/scale-out.md).
	Partition *Partition
	// FlushedFunc, if set, is called after a flush of output kind/name is
	// committed and its manifest written (alert rules run on marts then).
	// It must not block: the aggregator holds its flush lock.
	FlushedFunc func(kind, name string)
	// Committed, if set, is called with each batch once it is committed
	// to the state, before it is acked: the bench measures
	// publish-to-commit latency with it. It must be quick.
	Committed func(batch []workers.Record)

	// builder makes the aggregator the state of a [MartBuilder]
	// (martbuild.go): its records are the lake's rows, fed a batch of lake
	// files at a time, so its marts are flushed incrementally as an
	// unpartitioned aggregator's are. Its state is
	// state/<dataset>.marts.duckdb; it has no lake output, no progress
	// file, and no index on the key: keys are unique across the
	// partitions already, and an index over every key would grow the
	// builder's memory with the dataset.
	builder bool
}

func (c *Config) setDefaults() {
	if c.RecycleCommits == 0 {
		c.RecycleCommits = defaultRecycleCommits
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "1GB"
	}
	if c.FlushRecords <= 0 {
		c.FlushRecords = 50000
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = time.Second
	}
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: no data dir", ErrInvalidConfig)
	}
	if err := validateDataset(c.Dataset); err != nil {
		return err
	}
	for _, m := range c.Marts {
		if m.Dataset != c.Dataset.Name {
			continue
		}
		if err := subjects.ValidateToken("mart", m.Name); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		q := strings.TrimRight(strings.TrimSpace(m.SQL), ";")
		if q == "" {
			return fmt.Errorf("%w: mart %s: no SQL", ErrInvalidConfig, m.Name)
		}
		if !singleStatement(q) {
			return fmt.Errorf("%w: mart %s: SQL must be one SELECT statement", ErrInvalidConfig, m.Name)
		}
		if first := strings.ToUpper(firstWord(q)); first != "SELECT" && first != "WITH" && first != "FROM" {
			return fmt.Errorf("%w: mart %s: SQL must be a SELECT, not %s", ErrInvalidConfig, m.Name, first)
		}
	}
	if c.Partition != nil && (c.NoLake || c.Partition.Index < 0 || c.Partition.Index >= subjects.MaxPartitions) {
		return fmt.Errorf("%w: partition %d of dataset %s: a partition needs the lake (marts are built from it)", ErrInvalidConfig, c.Partition.Index, c.Dataset.Name)
	}
	if c.builder && (!c.NoLake || c.Partition != nil) {
		return fmt.Errorf("%w: a mart builder's state has no lake and no partition", ErrInvalidConfig)
	}
	if !isSafeSetting(c.MemoryLimit) {
		return fmt.Errorf("%w: memory limit %q", ErrInvalidConfig, c.MemoryLimit)
	}
	return nil
}

func validateDataset(d DatasetConfig) error {
	if err := subjects.ValidateToken("dataset", d.Name); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if strings.HasPrefix(d.Name, "_jf") {
		return fmt.Errorf("%w: dataset %s: names starting with _jf are reserved", ErrInvalidConfig, d.Name)
	}
	if d.Key == "" {
		return fmt.Errorf("%w: dataset %s: no key field to de-duplicate on", ErrInvalidConfig, d.Name)
	}
	if len(d.Schema) == 0 {
		return fmt.Errorf("%w: dataset %s: empty schema", ErrInvalidConfig, d.Name)
	}
	seen := map[string]bool{}
	for _, col := range d.Schema {
		if col.Name == "" || strings.HasPrefix(col.Name, "_jf") {
			return fmt.Errorf("%w: dataset %s: bad column name %q", ErrInvalidConfig, d.Name, col.Name)
		}
		if seen[strings.ToLower(col.Name)] {
			return fmt.Errorf("%w: dataset %s: column %s twice", ErrInvalidConfig, d.Name, col.Name)
		}
		seen[strings.ToLower(col.Name)] = true
		if _, err := converterFor(col.Type); err != nil {
			return fmt.Errorf("%w: dataset %s: column %s: %w", ErrInvalidConfig, d.Name, col.Name, err)
		}
	}
	return nil
}

// isSafeSetting accepts values such as "512MB" or "2 GiB".
func isSafeSetting(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ' || c == '.' || c == '%') {
			return false
		}
	}
	return s != ""
}
