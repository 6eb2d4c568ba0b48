package transform

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
)

// contract applies a dataset's schema contract to clean records: what
// happens to fields that are not schema columns. Safe for concurrent use.
type contract struct {
	dataset  string
	mode     string
	decision string // the metric's decision label of mode
	columns  map[string]struct{}

	mu       sync.Mutex
	counters map[string]prometheus.Counter // by field, at most MaxContractFields
	other    prometheus.Counter
	counts   map[string]int64 // records per field (as labelled), for heartbeats
}

func newContract(ds *pipeline.Dataset) *contract {
	c := &contract{dataset: ds.Name, mode: ds.Contract, columns: make(map[string]struct{}, len(ds.Schema)), counters: map[string]prometheus.Counter{}, counts: map[string]int64{}}
	switch c.mode {
	case pipeline.ContractDiscardColumns:
		c.decision = "dropped"
	case pipeline.ContractFreeze, pipeline.ContractDiscardRows:
		c.mode, c.decision = pipeline.ContractFreeze, "rejected"
	default:
		c.mode, c.decision = pipeline.ContractEvolve, "kept"
	}
	for _, col := range ds.Schema {
		c.columns[col.Name] = struct{}{}
	}
	return c
}

// apply enforces the contract on a record's fields after the transforms;
// unknown is scratch for the names found. It returns an error wrapping
// ErrContract when the record is refused.
func (c *contract) apply(f *pipeline.Fields, unknown *[]string) error {
	names := (*unknown)[:0]
	for _, fl := range f.All() {
		if _, ok := c.columns[fl.Name]; !ok {
			names = append(names, fl.Name)
		}
	}
	*unknown = names
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		c.count(n).Inc()
	}
	switch c.mode {
	case pipeline.ContractDiscardColumns:
		for _, n := range names {
			f.Delete(n)
		}
	case pipeline.ContractFreeze:
		sorted := slices.Sorted(slices.Values(names))
		return fmt.Errorf("%w freeze: field(s) not in the schema of %s: %s", ErrContract, c.dataset, strings.Join(sorted, ", "))
	}
	return nil
}

// count notes a record with field and returns the field's metric; a
// handler labels a bounded number of field names, as they come from the
// data.
func (c *contract) count(field string) prometheus.Counter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.counters[field]; ok {
		c.counts[field]++
		return k
	}
	if len(c.counters) >= metrics.MaxContractFields {
		if c.other == nil {
			c.other = metrics.ContractFields.WithLabelValues(c.dataset, metrics.OtherField, c.decision)
		}
		c.counts[metrics.OtherField]++
		return c.other
	}
	k := metrics.ContractFields.WithLabelValues(c.dataset, field, c.decision)
	c.counters[field] = k
	c.counts[field]++
	return k
}

// snapshot is a copy of the decisions so far, nil before the first.
func (c *contract) snapshot() *subjects.ContractCounts {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.counts) == 0 {
		return nil
	}
	return &subjects.ContractCounts{Contract: c.mode, Fields: maps.Clone(c.counts)}
}
