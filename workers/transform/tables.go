package transform

import (
	"slices"

	"github.com/jetfleet/jetfleet/pipeline"
)

// Tables is where the transform step reads lookup rows. Implementations
// are safe for concurrent use.
type Tables interface {
	// Row returns the row of table whose key column has the value key
	// (see pipeline.KeyString), and whether there is one.
	Row(table, key string) (map[string]any, bool)
}

// StaticTables is a fixed set of in-memory tables: table -> key -> row.
type StaticTables map[string]map[string]map[string]any

// Row implements [Tables].
func (s StaticTables) Row(table, key string) (map[string]any, bool) {
	row, ok := s[table][key]
	return row, ok
}

// NewStaticTables reads every lookup table of spec (inline rows, CSV
// files) into memory.
func NewStaticTables(spec *pipeline.Spec) (StaticTables, error) {
	out := StaticTables{}
	for _, l := range spec.Lookups {
		rows, err := l.ReadRows()
		if err != nil {
			return nil, err
		}
		t := make(map[string]map[string]any, len(rows))
		for _, r := range rows {
			t[pipeline.KeyString(r[l.Key])] = r
		}
		out[l.Name] = t
	}
	return out, nil
}

// TablesOf lists the lookup tables ds's transforms read, in first use order.
func TablesOf(ds *pipeline.Dataset) []string {
	var out []string
	for _, t := range ds.Transforms {
		if t.Op == pipeline.OpLookup && !slices.Contains(out, t.Lookup.Table) {
			out = append(out, t.Lookup.Table)
		}
	}
	return out
}
