package aggregate

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/subjects"
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
	// FlushRecords and FlushInterval: the mart is rebuilt once this many
	// records reached the lake since its last build, or this long after
	// the first of them did. Defaults from MartBuilderConfig.
	FlushRecords  int
	FlushInterval time.Duration
	// Compression is the Parquet codec of its files (see Compressions);
	// default MartBuilderConfig.Compression.
	Compression string
}

// validateMarts checks the marts of ds among ms (others are ignored).
func validateMarts(ds string, ms []Mart) error {
	for _, m := range ms {
		if m.Dataset != ds {
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
		if first := strings.ToUpper(duckdb.FirstWord(q)); first != "SELECT" && first != "WITH" && first != "FROM" {
			return fmt.Errorf("%w: mart %s: SQL must be a SELECT, not %s", ErrInvalidConfig, m.Name, first)
		}
		if m.Compression != "" && !slices.Contains(Compressions, strings.ToLower(m.Compression)) {
			return fmt.Errorf("%w: mart %s: compression %q (use %s)", ErrInvalidConfig, m.Name, m.Compression, strings.Join(Compressions, ", "))
		}
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
		if _, err := canonColumn(col); err != nil {
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
