package marts

import (
	"path/filepath"
	"strings"
)

// Directory and file names under a data directory.
const (
	StateDir     = "state"
	MartsDir     = "marts"
	LakeDir      = "lake"
	ManifestFile = "_manifest.json"
	// DataFile is the file name of a replaced (mart) partition.
	DataFile = "data.parquet"
	// TempPrefix starts the name of a file being written aside; readers
	// and globs skip it (dot files are hidden from Hive readers too).
	TempPrefix = ".tmp-"
)

// StateFile is the DuckDB state file of dataset's aggregator.
func StateFile(dataDir, dataset string) string {
	return filepath.Join(dataDir, StateDir, dataset+".duckdb")
}

// ProgressFile is where dataset's aggregator records its last committed
// stream sequence.
func ProgressFile(dataDir, dataset string) string {
	return filepath.Join(dataDir, StateDir, dataset+".progress.json")
}

// MartPath is the directory of mart.
func MartPath(dataDir, mart string) string { return filepath.Join(dataDir, MartsDir, mart) }

// LakePath is the directory of dataset's clean-record lake.
func LakePath(dataDir, dataset string) string { return filepath.Join(dataDir, LakeDir, dataset) }

// HiveDefault is the directory value of a NULL partition value.
const HiveDefault = "__HIVE_DEFAULT_PARTITION__"

// PartitionDir is the relative directory of one partition, "" for an
// unpartitioned table: col=value segments joined by '/'. values are the
// partition values as text; nil means NULL. Characters that would break a
// path or the col=value syntax are percent-escaped as Hive does.
func PartitionDir(cols []string, values []*string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		v := HiveDefault
		if values[i] != nil {
			v = escapeValue(*values[i])
		}
		parts[i] = c + "=" + v
	}
	return filepath.Join(parts...)
}

func escapeValue(s string) string {
	if s == "" {
		return HiveDefault
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || strings.IndexByte(`"#%'*/:=?\{[]^`, c) >= 0 {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
