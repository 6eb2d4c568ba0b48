package pipeline

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Lookup is a lookup table: rows keyed by one column, given inline in the
// pipeline file or as a CSV file with a header. Steps read it from a
// JetStream KV bucket that `jetfleet lookup load` fills.
type Lookup struct {
	Name string
	Key  string
	// Rows are the inline rows, nil for a CSV table.
	Rows []map[string]any
	// CSV is the path of a CSV table, resolved against the pipeline file.
	CSV string
	// Types types CSV cells by column: number, integer, bool or string
	// (the default). Inline rows carry their YAML types.
	Types map[string]string
	Pos   Pos
}

func (d *decoder) parseLookup(name string, k, n *yaml.Node, path string) *Lookup {
	l := &Lookup{Name: name, Pos: d.pos(k)}
	var rowsNode, csvNode, typesNode *yaml.Node
	d.mapping(n, path,
		field{name: "key", required: true, setFunc: func(v *yaml.Node, p string) { l.Key = d.str(v, p) }},
		field{name: "rows", setFunc: func(v *yaml.Node, p string) {
			rowsNode = v
			d.list(v, p, "rows (mappings of column to value)", func(i int, v *yaml.Node, p string) {
				row, ok := d.value(v, p).(map[string]any)
				if !ok || v.Kind != yaml.MappingNode {
					d.errorf(v, p, "got %s, want a mapping of column to value", kindName(v))
					return
				}
				l.Rows = append(l.Rows, row)
			})
		}},
		field{name: "csv", setFunc: func(v *yaml.Node, p string) { csvNode = v; l.CSV = d.str(v, p) }},
		field{name: "types", setFunc: func(v *yaml.Node, p string) {
			typesNode = v
			l.Types = map[string]string{}
			d.entries(v, p, "column", func(col string, _, v *yaml.Node, p string) {
				l.Types[col] = d.oneOf(v, p, cellTypes...)
			})
		}},
	)
	switch {
	case rowsNode == nil && csvNode == nil:
		d.errorf(n, path, "needs rows (inline) or csv (a file)")
	case rowsNode != nil && csvNode != nil:
		d.errorf(csvNode, join(path, "csv"), "give rows or csv, not both")
	case rowsNode != nil && typesNode != nil:
		d.errorf(typesNode, join(path, "types"), "only used with csv (inline rows carry their YAML types)")
	}
	if rowsNode != nil && l.Key != "" {
		seen := map[string]int{}
		for i, row := range l.Rows {
			p := index(join(path, "rows"), i)
			kv, ok := row[l.Key]
			if !ok || kv == nil {
				d.errorf(rowsNode.Content[i], p, "row has no key column %q", l.Key)
				continue
			}
			key := KeyString(kv)
			if j, dup := seen[key]; dup {
				d.errorf(rowsNode.Content[i], p, "key %q repeats row %d", key, j)
			}
			seen[key] = i
		}
	}
	return l
}

// Columns lists the table's columns: the union of the inline rows' keys,
// or the CSV header.
func (l *Lookup) Columns() ([]string, error) {
	if l.CSV == "" {
		var cols []string
		for _, row := range l.Rows {
			for c := range row {
				if !slices.Contains(cols, c) {
					cols = append(cols, c)
				}
			}
		}
		slices.Sort(cols)
		return cols, nil
	}
	f, err := os.Open(l.CSV)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", l.Name, err)
	}
	defer f.Close()
	header, err := csv.NewReader(f).Read()
	if err != nil {
		return nil, fmt.Errorf("lookup %s: read header of %s: %w", l.Name, l.CSV, err)
	}
	return header, nil
}

// ReadRows returns every row of the table: the inline rows, or the CSV
// file read and typed per Types.
func (l *Lookup) ReadRows() ([]map[string]any, error) {
	if l.CSV == "" {
		return l.Rows, nil
	}
	f, err := os.Open(l.CSV)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: %w", l.Name, err)
	}
	defer f.Close()
	return l.ReadCSV(f)
}

// ReadCSV reads a table's rows from CSV with a header line.
func (l *Lookup) ReadCSV(r io.Reader) ([]map[string]any, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("lookup %s: read header: %w", l.Name, err)
	}
	if !slices.Contains(header, l.Key) {
		return nil, fmt.Errorf("lookup %s: header %v has no key column %q", l.Name, header, l.Key)
	}
	var rows []map[string]any
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, fmt.Errorf("lookup %s: %w", l.Name, err)
		}
		line, _ := cr.FieldPos(0)
		row := make(map[string]any, len(header))
		for i, cell := range rec {
			v, err := TypeCell(cell, l.Types[header[i]])
			if err != nil {
				return nil, fmt.Errorf("lookup %s: line %d column %s: %w", l.Name, line, header[i], err)
			}
			row[header[i]] = v
		}
		if row[l.Key] == "" {
			return nil, fmt.Errorf("lookup %s: line %d: empty key", l.Name, line)
		}
		rows = append(rows, row)
	}
}

// TypeCell converts a text cell to typ (string, number, integer, bool).
func TypeCell(cell, typ string) (any, error) {
	switch typ {
	case TypeNumber:
		f, ok := parseFloat(strings.TrimSpace(cell))
		if !ok {
			return nil, fmt.Errorf("%q is not a number", cell)
		}
		return f, nil
	case TypeInteger:
		i, err := strconv.ParseInt(strings.TrimSpace(cell), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", cell)
		}
		return i, nil
	case TypeBool:
		b, err := strconv.ParseBool(strings.TrimSpace(cell))
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", cell)
		}
		return b, nil
	}
	return cell, nil
}

// KeyString is the text a lookup key value is stored and looked up by:
// strings as they are, numbers in their shortest form, booleans as
// true/false. 7, 7.0 and "7" all find the row keyed 7.
func KeyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	if f, ok := AsFloat(v); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}
