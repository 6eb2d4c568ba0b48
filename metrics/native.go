package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetfleet/jetfleet/internal/nativemem"
)

// nativeMemory reports the C allocators' heaps, which the Go and process
// collectors cannot split: DuckDB's states, mart builds and queries live
// there, outside the Go heap and mostly outside duckdb_memory().
type nativeMemory struct{ desc *prometheus.Desc }

// NativeMemory is the collector of jetfleet_native_memory_bytes.
var NativeMemory prometheus.Collector = nativeMemory{desc: prometheus.NewDesc(
	"jetfleet_native_memory_bytes",
	"C heap of this process by allocator: duckdb (DuckDB's jemalloc; allocated, or resident including freed pages not yet returned) "+
		"and malloc (the libc's; in_use, or free in its lists).",
	[]string{"allocator", "state"}, nil,
)}

func (c nativeMemory) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c nativeMemory) Collect(ch chan<- prometheus.Metric) {
	s := nativemem.Read()
	if s.HaveDuckDB {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.DuckDBAllocated), "duckdb", "allocated")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.DuckDBResident), "duckdb", "resident")
	}
	if s.HaveLibc {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.LibcInUse), "malloc", "in_use")
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.LibcFree), "malloc", "free")
	}
}
