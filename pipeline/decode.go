package pipeline

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxErrors bounds what one check reports; past it the rest is noise.
const maxErrors = 50

// decoder walks a YAML node tree, collecting every error with its place.
type decoder struct {
	file string
	errs []error
	// schemaPos collects the column positions of the schema being parsed.
	schemaPos []Pos
}

func (d *decoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, field, format string, args ...any) {
	if len(d.errs) >= maxErrors {
		return
	}
	d.errs = append(d.errs, &FieldError{Pos: d.pos(n), Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error { return errors.Join(d.errs...) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// field is one key of a mapping: its name and what to do with its value.
type field struct {
	name     string
	required bool
	setFunc  func(v *yaml.Node, path string)
}

// mapping decodes a mapping node by its known keys. Unknown keys and
// missing required keys are errors; fields are handled in file order.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) bool {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		d.errorf(n, path, "got %s, want a mapping with keys %s", kindNameOrNil(n), fieldNames(fields))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			d.errorf(k, join(path, k.Value), "given twice")
			continue
		}
		idx := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if idx < 0 {
			d.errorf(k, join(path, k.Value), "unknown key (want one of %s)", fieldNames(fields))
			continue
		}
		seen[k.Value] = true
		fields[idx].setFunc(resolve(v), join(path, k.Value))
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			d.errorf(n, join(path, f.name), "missing (required)")
		}
	}
	return true
}

func kindNameOrNil(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	return kindName(n)
}

func fieldNames(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return strings.Join(names, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// entries iterates a mapping whose keys are names (datasets, lookups, marts).
func (d *decoder) entries(n *yaml.Node, path, what string, eachFunc func(name string, k, v *yaml.Node, path string)) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		d.errorf(n, path, "got %s, want a mapping of %s names to their definitions", kindNameOrNil(n), what)
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if line, dup := seen[k.Value]; dup {
			d.errorf(k, join(path, k.Value), "already defined at line %d", line)
			continue
		}
		seen[k.Value] = k.Line
		eachFunc(k.Value, k, resolve(v), join(path, k.Value))
	}
}

func (d *decoder) list(n *yaml.Node, path, what string, eachFunc func(i int, v *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "got %s, want a list of %s", kindName(n), what)
		return
	}
	for i, v := range n.Content {
		eachFunc(i, resolve(v), index(path, i))
	}
}

func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.errorf(n, path, "got %s, want %s", kindName(n), want)
		return false
	}
	return true
}

func (d *decoder) str(n *yaml.Node, path string) string {
	if !d.scalar(n, path, "a string") {
		return ""
	}
	return n.Value
}

func (d *decoder) strs(n *yaml.Node, path string) []string {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		return []string{n.Value} // a single name is a one-element list
	}
	var out []string
	d.list(n, path, "strings", func(_ int, v *yaml.Node, p string) {
		if d.scalar(v, p, "a string") {
			out = append(out, v.Value)
		}
	})
	return out
}

func (d *decoder) boolean(n *yaml.Node, path string) bool {
	if !d.scalar(n, path, "true or false") {
		return false
	}
	var b bool
	if n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.errorf(n, path, "got %q, want true or false", n.Value)
	}
	return b
}

func (d *decoder) integer(n *yaml.Node, path string, minV int) int {
	if !d.scalar(n, path, "an integer") {
		return 0
	}
	v, err := strconv.Atoi(strings.ReplaceAll(n.Value, "_", ""))
	if err != nil || n.Tag != "!!int" {
		d.errorf(n, path, "got %q, want an integer", n.Value)
		return 0
	}
	if v < minV {
		d.errorf(n, path, "got %d, want at least %d", v, minV)
	}
	return v
}

func (d *decoder) number(n *yaml.Node, path string) float64 {
	if !d.scalar(n, path, "a number") {
		return 0
	}
	if n.Tag != "!!int" && n.Tag != "!!float" {
		d.errorf(n, path, "got %q, want a number", n.Value)
		return 0
	}
	var f float64
	if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		d.errorf(n, path, "got %q, want a finite number", n.Value)
		return 0
	}
	return f
}

func (d *decoder) duration(n *yaml.Node, path string) time.Duration {
	if !d.scalar(n, path, "a duration such as 2s or 500ms") {
		return 0
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v <= 0 {
		d.errorf(n, path, "got %q, want a positive duration such as 2s or 500ms", n.Value)
		return 0
	}
	return v
}

// oneOf decodes a string that must be one of allowed.
func (d *decoder) oneOf(n *yaml.Node, path string, allowed ...string) string {
	s := d.str(n, path)
	if s != "" && !slices.Contains(allowed, s) {
		d.errorf(n, path, "got %q, want one of %s", s, strings.Join(allowed, ", "))
		return ""
	}
	return s
}

// value decodes any scalar, list or mapping into plain Go values, with
// integers as int64, floats as float64 and mappings as map[string]any.
func (d *decoder) value(n *yaml.Node, path string) any {
	var v any
	if err := n.Decode(&v); err != nil {
		d.errorf(n, path, "%v", err)
		return nil
	}
	return normalizeYAML(v)
}

func normalizeYAML(v any) any {
	switch x := v.(type) {
	case int:
		return int64(x)
	case []any:
		for i := range x {
			x[i] = normalizeYAML(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalizeYAML(x[k])
		}
	}
	return v
}
