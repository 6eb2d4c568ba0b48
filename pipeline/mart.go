package pipeline

import (
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Mart defaults, applied when the file leaves flush out.
const (
	DefaultFlushRecords  = 10000
	DefaultFlushInterval = 2 * time.Second
)

// MartCompressions are the Parquet codecs a mart's files can use.
var MartCompressions = []string{"snappy", "zstd", "gzip", "lz4", "brotli", "uncompressed"}

// Mart is a DuckDB SQL query over a dataset's clean records, materialised
// as Parquet. Its SQL is checked by the aggregator, which has DuckDB.
type Mart struct {
	Name    string
	Dataset string
	SQL     string
	// PartitionBy names output columns of SQL used as Hive partitions.
	PartitionBy []string
	// FlushRecords and FlushInterval bound how much clean data the
	// aggregator holds before rewriting the mart's touched partitions.
	FlushRecords  int
	FlushInterval time.Duration
	// Compression is the Parquet codec of the mart's files, one of
	// MartCompressions; "" is the aggregator's default (snappy).
	Compression string
	// Generated marks a mart the file does not define itself: the
	// anomalies mart of anomaly alert rules.
	Generated bool
	Pos       Pos
}

func (d *decoder) parseMart(name string, k, n *yaml.Node, path string) *Mart {
	m := &Mart{Name: name, Pos: d.pos(k), FlushRecords: DefaultFlushRecords, FlushInterval: DefaultFlushInterval}
	d.mapping(n, path,
		field{name: "dataset", required: true, setFunc: func(v *yaml.Node, p string) { m.Dataset = d.str(v, p) }},
		field{name: "sql", required: true, setFunc: func(v *yaml.Node, p string) {
			m.SQL = strings.TrimSpace(d.str(v, p))
			if m.SQL == "" && v.Kind == yaml.ScalarNode {
				d.errorf(v, p, "empty, want a DuckDB SELECT over the dataset")
			}
		}},
		field{name: "partition_by", setFunc: func(v *yaml.Node, p string) {
			m.PartitionBy = d.strs(v, p)
			for _, c := range m.PartitionBy {
				if !identRE.MatchString(c) {
					d.errorf(v, p, "%q is not a column name (letters, digits and _)", c)
				}
			}
		}},
		field{name: "compression", setFunc: func(v *yaml.Node, p string) {
			m.Compression = strings.ToLower(d.str(v, p))
			if !slices.Contains(MartCompressions, m.Compression) {
				d.errorf(v, p, "%q is not a Parquet codec jetfleet writes (%s)", m.Compression, strings.Join(MartCompressions, ", "))
			}
		}},
		field{name: "flush", setFunc: func(v *yaml.Node, p string) {
			d.mapping(v, p,
				field{name: "records", setFunc: func(v *yaml.Node, p string) { m.FlushRecords = d.integer(v, p, 1) }},
				field{name: "interval", setFunc: func(v *yaml.Node, p string) { m.FlushInterval = d.duration(v, p) }},
			)
		}},
	)
	return m
}
