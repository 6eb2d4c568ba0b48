package fleet

import (
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/aggregate"
)

// aggregateMember runs replica of the aggregators of ds: the partitions
// of the clean stage it owns and the mart builder (partitions.go).
func (f *Fleet) aggregateMember(ds *pipeline.Dataset, replica, replicas int) (Member, bool, error) {
	m, err := f.partitionMember(ds, replica, replicas)
	return m, err == nil, err
}

func martsOf(spec *pipeline.Spec, dataset string) []aggregate.Mart {
	var out []aggregate.Mart
	for _, m := range spec.Marts {
		if m.Dataset == dataset {
			out = append(out, aggregate.Mart{Name: m.Name, Dataset: m.Dataset, SQL: m.SQL, PartitionBy: m.PartitionBy, FlushRecords: m.FlushRecords, FlushInterval: m.FlushInterval, Compression: m.Compression})
		}
	}
	return out
}

// DatasetConfig is the aggregator's view of a pipeline dataset.
func DatasetConfig(ds *pipeline.Dataset) aggregate.DatasetConfig {
	cols := make([]aggregate.Column, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = aggregate.Column{Name: c.Name, Type: c.Type}
	}
	return aggregate.DatasetConfig{Name: ds.Name, Key: ds.Key, Schema: cols}
}

// CheckMarts compiles every mart's SQL of spec against its dataset's
// schema in DuckDB, so a bad mart fails at check time, not at a flush.
func CheckMarts(spec *pipeline.Spec) error {
	var datasets []aggregate.DatasetConfig
	var ms []aggregate.Mart
	for _, ds := range spec.Datasets {
		datasets = append(datasets, DatasetConfig(ds))
		ms = append(ms, martsOf(spec, ds.Name)...)
	}
	return aggregate.CheckMarts(datasets, ms)
}

// MartUpkeeps says how the aggregate step keeps each mart of spec
// (incrementally, or recomputed from the lake, and why).
func MartUpkeeps(spec *pipeline.Spec) ([]aggregate.MartUpkeep, error) {
	var datasets []aggregate.DatasetConfig
	var ms []aggregate.Mart
	for _, ds := range spec.Datasets {
		datasets = append(datasets, DatasetConfig(ds))
		ms = append(ms, martsOf(spec, ds.Name)...)
	}
	return aggregate.MartUpkeeps(datasets, ms)
}
