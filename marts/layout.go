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

// ProgressFile is where dataset's aggregator mirrors what it committed
// and folded into the marts, for status and --wait-idle.
func ProgressFile(dataDir, dataset string) string {
	return filepath.Join(dataDir, StateDir, dataset+".progress.json")
}

// DatasetStateDir holds the aggregate step's state of dataset: a directory
// per key partition (journal, keys, progress) and the mart builder's.
func DatasetStateDir(dataDir, dataset string) string {
	return filepath.Join(dataDir, StateDir, dataset)
}

// MartPath is the directory of mart.
func MartPath(dataDir, mart string) string { return filepath.Join(dataDir, MartsDir, mart) }

// LakePath is the directory of dataset's clean-record lake.
func LakePath(dataDir, dataset string) string { return filepath.Join(dataDir, LakeDir, dataset) }

// LakeLogDir holds the lake's log: one JSON entry per lake flush, listing
// the files it added (the lake's manifest of files).
func LakeLogDir(dataDir, dataset string) string {
	return filepath.Join(LakePath(dataDir, dataset), LakeLogName)
}

// LakeLogName is the lake log's directory name; it holds no Parquet, so
// Hive readers of the lake pass it by.
const LakeLogName = "_log"

// HiveDefault is the directory value of a NULL partition value.
const HiveDefault = "__HIVE_DEFAULT_PARTITION__"

// PartitionDir is the relative directory of one partition, "" for an
// unpartitioned table: col=value segments joined by '/'. values are the
// partition values as text; nil means NULL. Values are escaped as DuckDB
// writes Hive partitions (PARTITION_BY): every byte but letters, digits
// and "-_.~" percent-encoded, so the directories DuckDB writes and the
// ones jetfleet names are the same.
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
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
