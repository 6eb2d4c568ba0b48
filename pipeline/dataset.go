package pipeline

import (
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Dataset is one stream of records: its clean schema, the rules a record
// must pass, the transforms that clean it, and how files are ingested.
type Dataset struct {
	Name        string
	Description string
	// Key is the field that identifies a record; duplicates of a key count
	// once downstream.
	Key    string
	Schema []Column // columns of the clean record, in order
	// SchemaPos are the positions of Schema's columns in the file.
	SchemaPos []Pos
	// Sources are the shapes records arrive in, mapped to one before
	// validation; empty when records arrive in the dataset's shape.
	Sources    []*Source
	Rules      []*Rule
	Transforms []*Transform
	Ingest     Ingest
	// ExternalSteps are steps of this dataset that a program outside
	// jetfleet runs (any language, following docs/wire.md): the fleet
	// builds no worker for them, and the steps around them run as usual.
	ExternalSteps []string
	// Contract says what happens to a clean record's fields that are not
	// in Schema: one of Contracts, default ContractEvolve.
	Contract    string
	ContractPos Pos
	Pos         Pos
}

// Schema contracts: what the transform step does with a clean record's
// fields that are not schema columns (docs/pipeline.md, "Schema contracts").
const (
	// ContractEvolve keeps them in the clean record (JF_CLEAN and its
	// readers see them); the lake and marts hold the schema's columns, so
	// a field becomes a column by adding it to the schema.
	ContractEvolve = "evolve"
	// ContractDiscardColumns drops them from the clean record.
	ContractDiscardColumns = "discard_columns"
	// ContractFreeze dead-letters the record, naming the fields.
	ContractFreeze = "freeze"
	// ContractDiscardRows is ContractFreeze: a record is never dropped
	// without a trace, so a discarded row is a dead letter.
	ContractDiscardRows = "discard_rows"
)

// Contracts are the values of a dataset's contract.
var Contracts = []string{ContractEvolve, ContractDiscardColumns, ContractFreeze, ContractDiscardRows}

// ExternalStepNames are the steps a dataset may leave to an outside
// program: the record steps between two streams. Ingest has no consumer,
// and the aggregator owns the marts' DuckDB state.
var ExternalStepNames = []string{"validate", "transform"}

// External reports whether step of this dataset runs outside jetfleet.
func (d *Dataset) External(step string) bool { return slices.Contains(d.ExternalSteps, step) }

// Column is one column of a clean record, typed as DuckDB types it.
type Column struct {
	Name string
	Type string
}

// Column finds a schema column by name.
func (d *Dataset) Column(name string) (Column, bool) {
	for _, c := range d.Schema {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// duckTypeRE accepts the DuckDB type names a clean column can have: the
// scalar types, with DECIMAL(p,s) precision and VARCHAR(n) lengths.
var duckTypeRE = regexp.MustCompile(`^(VARCHAR|TEXT|STRING|BOOLEAN|BOOL|TINYINT|SMALLINT|INTEGER|INT|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|REAL|DOUBLE|DATE|TIME|TIMESTAMP|TIMESTAMPTZ|TIMESTAMP WITH TIME ZONE|INTERVAL|UUID|JSON|BLOB)(\(\d+\))?$|^(DECIMAL|NUMERIC)(\(\d+(,\s*\d+)?\))?$`)

// FieldKind is what a schema column holds in JSON: "number", "integer",
// "bool" or "string". CSV cells are typed by it.
func (c Column) FieldKind() string {
	t := strings.ToUpper(c.Type)
	switch {
	case strings.HasPrefix(t, "DECIMAL"), strings.HasPrefix(t, "NUMERIC"), t == "FLOAT", t == "REAL", t == "DOUBLE":
		return "number"
	case strings.HasSuffix(t, "INT") || strings.HasSuffix(t, "INTEGER"):
		return "integer"
	case t == "BOOLEAN", t == "BOOL":
		return "bool"
	}
	return "string"
}

func (d *decoder) parseDataset(name string, k, n *yaml.Node, path string) *Dataset {
	ds := &Dataset{Name: name, Pos: d.pos(k), Ingest: Ingest{ID: IDContent, Delimiter: ','}}
	d.mapping(n, path,
		field{name: "description", setFunc: func(v *yaml.Node, p string) { ds.Description = d.str(v, p) }},
		field{name: "key", required: true, setFunc: func(v *yaml.Node, p string) { ds.Key = d.str(v, p) }},
		field{name: "schema", required: true, setFunc: func(v *yaml.Node, p string) {
			d.schemaPos = nil
			ds.Schema = d.parseSchema(v, p)
			ds.SchemaPos = d.schemaPos
		}},
		field{name: "sources", setFunc: func(v *yaml.Node, p string) { ds.Sources = d.parseSources(v, p) }},
		field{name: "validate", setFunc: func(v *yaml.Node, p string) {
			d.list(v, p, "rules", func(i int, v *yaml.Node, p string) {
				if r := d.parseRule(v, p); r != nil {
					ds.Rules = append(ds.Rules, r)
				}
			})
		}},
		field{name: "transform", setFunc: func(v *yaml.Node, p string) {
			d.list(v, p, "transforms", func(i int, v *yaml.Node, p string) {
				if t := d.parseTransform(v, p); t != nil {
					ds.Transforms = append(ds.Transforms, t)
				}
			})
		}},
		field{name: "ingest", setFunc: func(v *yaml.Node, p string) { ds.Ingest = d.parseIngest(v, p) }},
		field{name: "external_steps", setFunc: func(v *yaml.Node, p string) { ds.ExternalSteps = d.parseExternalSteps(v, p) }},
		field{name: "contract", setFunc: func(v *yaml.Node, p string) {
			ds.Contract, ds.ContractPos = d.oneOf(v, p, Contracts...), d.pos(v)
		}},
	)
	if n.Kind == yaml.MappingNode {
		d.checkExternal(ds, n, path)
	}
	if ds.Contract == ContractDiscardRows {
		ds.Contract = ContractFreeze
	}
	// The transform step enforces the contract, on the record as it
	// leaves for JF_CLEAN; a program outside jetfleet would not.
	if ds.Contract != "" && ds.Contract != ContractEvolve && ds.External("transform") {
		d.errorf(n, join(path, "contract"), "contract %s is enforced by jetfleet's transform step, and transform is in external_steps: enforce it in that program, or leave contract out", ds.Contract)
	}
	if ds.Contract == "" {
		ds.Contract = ContractEvolve
	}
	return ds
}

func (d *decoder) parseSchema(n *yaml.Node, path string) []Column {
	var cols []Column
	seen := map[string]bool{}
	d.list(n, path, "columns {name, type}", func(i int, v *yaml.Node, p string) {
		var c Column
		var typeNode, nameNode *yaml.Node
		d.mapping(v, p,
			field{name: "name", required: true, setFunc: func(v *yaml.Node, p string) { nameNode = v; c.Name = d.str(v, p) }},
			field{name: "type", required: true, setFunc: func(v *yaml.Node, p string) { typeNode = v; c.Type = strings.ToUpper(strings.TrimSpace(d.str(v, p))) }},
		)
		if nameNode != nil && c.Name != "" {
			if !identRE.MatchString(c.Name) {
				d.errorf(nameNode, join(p, "name"), "%q is not a column name (letters, digits and _, not starting with a digit)", c.Name)
			}
			if seen[c.Name] {
				d.errorf(nameNode, join(p, "name"), "column %q listed twice", c.Name)
			}
			seen[c.Name] = true
		}
		if typeNode != nil && c.Type != "" && !duckTypeRE.MatchString(c.Type) {
			d.errorf(typeNode, join(p, "type"), "unknown type %q (want a DuckDB type such as VARCHAR, DOUBLE, BIGINT, BOOLEAN, DATE, TIMESTAMPTZ, DECIMAL(18,2))", c.Type)
		}
		cols = append(cols, c)
		pos := d.pos(v)
		if nameNode != nil {
			pos = d.pos(nameNode)
		}
		d.schemaPos = append(d.schemaPos, pos)
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errorf(n, path, "empty, want at least one column")
	}
	return cols
}

// identRE is a field or column name safe to use unquoted in SQL and expressions.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (d *decoder) parseExternalSteps(n *yaml.Node, path string) []string {
	var steps []string
	d.list(n, path, "step names", func(i int, v *yaml.Node, p string) {
		s := d.oneOf(v, p, ExternalStepNames...)
		if s == "" {
			return
		}
		if slices.Contains(steps, s) {
			d.errorf(v, p, "step %s listed twice", s)
			return
		}
		steps = append(steps, s)
	})
	return steps
}

// checkExternal refuses rules or transforms for a step jetfleet does not
// run: they would silently never apply.
func (d *decoder) checkExternal(ds *Dataset, n *yaml.Node, path string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		// A step's section has the step's name: validate:, transform:.
		k := n.Content[i]
		if slices.Contains(ExternalStepNames, k.Value) && ds.External(k.Value) {
			d.errorf(k, join(path, k.Value), "step %s is in external_steps: its program outside jetfleet does this work, drop the %s section", k.Value, k.Value)
		}
	}
}
