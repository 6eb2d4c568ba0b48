package pipeline

import (
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Ingest is how files of a dataset are turned into records.
type Ingest struct {
	// Bulk is how many records one message carries; 0 or 1 publishes one
	// message per record.
	Bulk int
	// ID is how message ids are derived: IDContent (file content hash and
	// line number, the default) or IDKey (the dataset key, so the same
	// record in any file is one message within the server's window).
	ID string
	// Delimiter separates CSV cells; default ','.
	Delimiter rune
	// FixedWidth is the column layout of fixed-width text files.
	FixedWidth []FixedColumn
	// Watch is a landing directory for this dataset's files, resolved
	// against the pipeline file's directory; "" for none.
	Watch string
	Pos   Pos
}

// Message id derivations of file ingestion.
const (
	IDContent = "content"
	IDKey     = "key"
)

// FixedColumn is one column of a fixed-width line.
type FixedColumn struct {
	Name string
	// Start is the 1-based position of the column's first character and
	// Width its length in characters (Unicode code points).
	Start, Width int
	// Type is string, number, integer or bool; a cell that does not parse
	// as its type is kept as a string so validation reports it.
	Type string
	// Trim removes surrounding spaces; default true. A cell that is empty
	// after trimming is omitted from the record (null), as DuckDB reads it.
	Trim bool
}

var cellTypes = []string{TypeString, TypeNumber, TypeInteger, TypeBool}

func (d *decoder) parseIngest(n *yaml.Node, path string) Ingest {
	in := Ingest{ID: IDContent, Delimiter: ',', Pos: d.pos(n)}
	d.mapping(n, path,
		field{name: "bulk", setFunc: func(v *yaml.Node, p string) { in.Bulk = d.integer(v, p, 0) }},
		field{name: "id", setFunc: func(v *yaml.Node, p string) { in.ID = d.oneOf(v, p, IDContent, IDKey) }},
		field{name: "watch", setFunc: func(v *yaml.Node, p string) { in.Watch = d.str(v, p) }},
		field{name: "csv", setFunc: func(v *yaml.Node, p string) {
			d.mapping(v, p, field{name: "delimiter", setFunc: func(v *yaml.Node, p string) {
				s := d.str(v, p)
				r, size := utf8.DecodeRuneInString(s)
				if size != len(s) || s == "" || r == '"' || r == '\n' || r == '\r' || r == utf8.RuneError {
					d.errorf(v, p, "got %q, want one character other than a quote or newline", s)
					return
				}
				in.Delimiter = r
			}})
		}},
		field{name: "fixed_width", setFunc: func(v *yaml.Node, p string) {
			d.mapping(v, p, field{name: "columns", required: true, setFunc: func(v *yaml.Node, p string) {
				in.FixedWidth = d.parseFixedColumns(v, p)
			}})
		}},
	)
	return in
}

func (d *decoder) parseFixedColumns(n *yaml.Node, path string) []FixedColumn {
	var cols []FixedColumn
	seen := map[string]bool{}
	d.list(n, path, "columns {name, start, width, type, trim}", func(i int, v *yaml.Node, p string) {
		c := FixedColumn{Type: TypeString, Trim: true}
		ok := d.mapping(v, p,
			field{name: "name", required: true, setFunc: func(v *yaml.Node, p string) {
				c.Name = d.str(v, p)
				if seen[c.Name] {
					d.errorf(v, p, "column %q listed twice", c.Name)
				}
				seen[c.Name] = true
			}},
			field{name: "start", required: true, setFunc: func(v *yaml.Node, p string) { c.Start = d.integer(v, p, 1) }},
			field{name: "width", required: true, setFunc: func(v *yaml.Node, p string) { c.Width = d.integer(v, p, 1) }},
			field{name: "type", setFunc: func(v *yaml.Node, p string) { c.Type = d.oneOf(v, p, cellTypes...) }},
			field{name: "trim", setFunc: func(v *yaml.Node, p string) { c.Trim = d.boolean(v, p) }},
		)
		if !ok {
			return
		}
		for _, o := range cols {
			if c.Start < o.Start+o.Width && o.Start < c.Start+c.Width {
				d.errorf(v, p, "columns %s (%d-%d) and %s (%d-%d) overlap", o.Name, o.Start, o.Start+o.Width-1, c.Name, c.Start, c.Start+c.Width-1)
			}
		}
		cols = append(cols, c)
	})
	return cols
}
