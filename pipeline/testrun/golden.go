package testrun

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"go.yaml.in/yaml/v3"
)

const goldenHeader = "# Written by `jetfleet pipeline test --update`: every output of the case,\n# compared whole. Review the diff before committing it.\n"

// writeGolden writes got as the case's golden file: every section, every
// field, rows sorted, one row per line.
func writeGolden(path string, got *Outputs) error {
	g := &Outputs{Clean: map[string]*Rows{}, Marts: map[string]*Rows{}}
	for name, r := range got.Clean {
		rows := normalizeAll(r.Rows)
		g.Clean[name] = &Rows{Exact: true, Records: rows}
	}
	for name, r := range got.Marts {
		g.Marts[name] = &Rows{Exact: true, Rows: normalizeAll(r.Rows)}
	}
	dead := slices.Clone(*got.DeadLetters)
	slices.SortFunc(dead, func(a, b DeadLetter) int {
		return cmp.Or(cmp.Compare(a.Step, b.Step), cmp.Compare(a.Dataset, b.Dataset), cmp.Compare(a.Reason, b.Reason),
			cmp.Compare(rowString(normalize(a.Record)), rowString(normalize(b.Record))), cmp.Compare(a.Data, b.Data))
	})
	for i := range dead {
		dead[i].Record = integers(normalize(dead[i].Record)).(map[string]any)
		if len(dead[i].Record) == 0 {
			dead[i].Record = nil
		}
	}
	g.DeadLetters = &dead
	alerts := slices.Clone(*got.Alerts)
	slices.SortFunc(alerts, func(a, b Alert) int {
		return cmp.Or(cmp.Compare(a.Rule, b.Rule), cmp.Compare(a.Key, b.Key), cmp.Compare(a.Message, b.Message))
	})
	g.Alerts = &alerts

	var n yaml.Node
	if err := n.Encode(g); err != nil {
		return err
	}
	flowRows(&n, "")
	var b bytes.Buffer
	b.WriteString(goldenHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func normalizeAll(rows []map[string]any) []map[string]any {
	out := make([]map[string]any, len(rows))
	for i, r := range rows {
		out[i] = integers(normalize(r)).(map[string]any)
	}
	sortRows(out)
	return out
}

// integers writes whole numbers as integers (a unix_ms timestamp as
// 1795312810000, not 1.79531281e+12).
func integers(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = integers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = integers(e)
		}
	}
	return v
}

// flowRows writes each row, record and dead letter on one line, so a
// golden file's diff is a row's.
func flowRows(n *yaml.Node, parent string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			flowRows(c, parent)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode && (parent == "rows" || parent == "records" || parent == "dead_letters" || parent == "alerts") {
				c.Style = yaml.FlowStyle
				continue
			}
			flowRows(c, parent)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			flowRows(n.Content[i+1], n.Content[i].Value)
		}
	}
}

// readGolden reads a golden file written by writeGolden.
func readGolden(path string) (*Outputs, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("golden file: %w (run with --update to write it)", err)
	}
	var o Outputs
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&o); err != nil {
		return nil, fmt.Errorf("%w: golden file %s: %v", ErrInvalidTest, path, err)
	}
	if err := o.compile(); err != nil {
		return nil, fmt.Errorf("%w: golden file %s: %v", ErrInvalidTest, path, err)
	}
	// A golden file is every output: a section it lacks must be empty.
	if o.DeadLetters == nil {
		o.DeadLetters = &[]DeadLetter{}
	}
	if o.Alerts == nil {
		o.Alerts = &[]Alert{}
	}
	for i := range *o.DeadLetters {
		d := &(*o.DeadLetters)[i]
		d.re = nil // a golden reason is the whole reason, not a pattern
	}
	for i := range *o.Alerts {
		(*o.Alerts)[i].re = nil
	}
	return &o, nil
}
