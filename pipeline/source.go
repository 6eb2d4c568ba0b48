package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Source is one shape a dataset's records arrive in on jf.ingest.<dataset>
// (two feeds of one thing, say). The validate step maps each record to
// the dataset's one shape before any rule runs, so rules, transforms and
// marts see a single shape. A dataset without sources takes records as
// they come.
type Source struct {
	Name string
	// When is a boolean expression over the incoming record that picks
	// this source; sources are tried in file order, the first match wins.
	// Empty matches every record (only the last source may omit it).
	When    string
	Program *vm.Program
	// Fields are the mapped record's fields, each copied from a path in
	// the incoming record (nested objects by dotted path, trade.price).
	// A missing path leaves the field unset, for a rule to catch.
	Fields []SourceField
	// Set holds constant fields, such as which feed a record came from.
	Set []SourceConst
	Pos Pos
}

// SourceField is one mapped field: Field is set from Path.
type SourceField struct {
	Field string
	Path  []string
}

// SourceConst is a constant field of a mapped record.
type SourceConst struct {
	Field string
	Value any
}

func (d *decoder) parseSources(n *yaml.Node, path string) []*Source {
	var out []*Source
	var keys []*yaml.Node
	d.entries(n, path, "source", func(name string, k, v *yaml.Node, p string) {
		keys = append(keys, k)
		src := &Source{Name: name, Pos: d.pos(k)}
		seen := map[string]bool{}
		once := func(n *yaml.Node, p, f string) bool {
			if f == "" {
				d.errorf(n, p, "empty field name")
				return false
			}
			if seen[f] {
				d.errorf(n, p, "field %s is set twice", f)
				return false
			}
			seen[f] = true
			return true
		}
		d.mapping(v, p,
			field{name: "when", setFunc: func(v *yaml.Node, p string) {
				src.When = d.str(v, p)
				src.Program = d.compileExpr(v, p, src.When, expr.AsBool())
			}},
			field{name: "fields", required: true, setFunc: func(v *yaml.Node, p string) {
				d.entries(v, p, "field", func(f string, k, v *yaml.Node, p string) {
					from := d.str(v, p)
					segs := strings.Split(from, ".")
					for _, s := range segs {
						if s == "" && from != "" {
							d.errorf(v, p, "path %q has an empty part (want field or a.b.c)", from)
							return
						}
					}
					if from != "" && once(k, p, f) {
						src.Fields = append(src.Fields, SourceField{Field: f, Path: segs})
					}
				})
			}},
			field{name: "set", setFunc: func(v *yaml.Node, p string) {
				d.entries(v, p, "field", func(f string, k, v *yaml.Node, p string) {
					if !d.scalar(v, p, "a string, number or boolean") || !once(k, p, f) {
						return
					}
					src.Set = append(src.Set, SourceConst{Field: f, Value: d.value(v, p)})
				})
			}},
		)
		out = append(out, src)
	})
	if n.Kind == yaml.MappingNode && len(n.Content) == 0 {
		d.errorf(n, path, "empty, want at least one source")
	}
	for i, s := range out[:max(len(out)-1, 0)] {
		if s.When == "" {
			d.errorf(keys[i], join(path, s.Name), "has no when, so it takes every record and the sources after it are never used (give it a when, or move it last)")
		}
	}
	return out
}

// FromSource maps rec to the dataset's shape by the first source whose
// When matches. Without sources it returns rec itself. A record no source
// matches is an error naming every source's condition.
func (d *Dataset) FromSource(rec Record) (Record, *Source, error) {
	if len(d.Sources) == 0 {
		return rec, nil, nil
	}
	var env map[string]any
	for _, s := range d.Sources {
		if s.Program != nil {
			if env == nil {
				env = ExprEnv(rec)
			}
			ok, err := expr.Run(s.Program, env)
			if err != nil {
				msg, _, _ := strings.Cut(err.Error(), "\n")
				return nil, nil, fmt.Errorf("%w: source %s: when: %s", ErrNoSource, s.Name, msg)
			}
			if ok != true {
				continue
			}
		}
		return s.apply(rec), s, nil
	}
	conds := make([]string, len(d.Sources))
	for i, s := range d.Sources {
		conds[i] = s.Name + ": " + s.When
	}
	return nil, nil, fmt.Errorf("%w (%s)", ErrNoSource, strings.Join(conds, "; "))
}

func (s *Source) apply(rec Record) Record {
	out := make(Record, len(s.Fields)+len(s.Set))
	for _, f := range s.Fields {
		if v, ok := lookupPath(rec, f.Path); ok {
			out[f.Field] = v
		}
	}
	for _, c := range s.Set {
		out[c.Field] = jsonValue(c.Value)
	}
	return out
}

func lookupPath(rec Record, path []string) (any, bool) {
	var cur any = rec
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// jsonValue gives a constant from the pipeline file the type a decoded
// record holds: numbers as json.Number.
func jsonValue(v any) any {
	switch x := v.(type) {
	case int64:
		return json.Number(fmt.Sprint(x))
	case float64:
		return json.Number(fmt.Sprint(x))
	}
	return v
}
