package pipeline

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Field types a rule can require.
const (
	TypeString    = "string"
	TypeNumber    = "number"  // a JSON number; a numeric string is not one
	TypeInteger   = "integer" // a JSON number with no fractional part, within ±2^53
	TypeBool      = "bool"
	TypeTimestamp = "timestamp" // a string (or for unix formats a number) in one of Formats
	TypeObject    = "object"
	TypeArray     = "array"
)

var ruleTypes = []string{TypeString, TypeNumber, TypeInteger, TypeBool, TypeTimestamp, TypeObject, TypeArray}

// Rule is one validation rule: either checks on one field, or a boolean
// expression over the whole record. A record must pass every rule; it is
// dead-lettered with all the rules it failed.
type Rule struct {
	// Name labels the rule in dead-letter reasons: the field, or the name
	// given to an expression rule.
	Name  string
	Field string
	// Required fails a record where the field is missing or null. A field
	// that is not required and absent passes its other checks.
	Required bool
	Type     string
	// Normalize is applied to a string before Enum, Regex and the length
	// checks (the record itself is not changed by validation).
	Normalize []Normalizer
	Min, Max  *float64 // inclusive bounds of a number
	MinLength *int     // in characters (Unicode code points)
	MaxLength *int
	Enum      []any // allowed values: strings, or float64 for numbers
	Regex     *regexp.Regexp
	Time      TimeFormats // for TypeTimestamp
	// Expr is a boolean expression over the record, compiled as Program.
	Expr    string
	Program *vm.Program
	// Message replaces the generated text of a failure.
	Message string
	Pos     Pos
}

func (d *decoder) parseRule(n *yaml.Node, path string) *Rule {
	r := &Rule{Pos: d.pos(n)}
	var (
		nodes               = map[string]*yaml.Node{}
		formats             []string
		tz, regex, exprText string
	)
	mark := func(key string, v *yaml.Node) { nodes[key] = v }
	ok := d.mapping(n, path,
		field{name: "field", setFunc: func(v *yaml.Node, p string) { mark("field", v); r.Field = d.str(v, p) }},
		field{name: "name", setFunc: func(v *yaml.Node, p string) { mark("name", v); r.Name = d.str(v, p) }},
		field{name: "required", setFunc: func(v *yaml.Node, p string) { r.Required = d.boolean(v, p) }},
		field{name: "type", setFunc: func(v *yaml.Node, p string) { mark("type", v); r.Type = d.oneOf(v, p, ruleTypes...) }},
		field{name: "normalize", setFunc: func(v *yaml.Node, p string) { mark("normalize", v); r.Normalize = d.normalizers(v, p) }},
		field{name: "min", setFunc: func(v *yaml.Node, p string) { mark("min", v); f := d.number(v, p); r.Min = &f }},
		field{name: "max", setFunc: func(v *yaml.Node, p string) { mark("max", v); f := d.number(v, p); r.Max = &f }},
		field{name: "min_length", setFunc: func(v *yaml.Node, p string) { mark("min_length", v); i := d.integer(v, p, 0); r.MinLength = &i }},
		field{name: "max_length", setFunc: func(v *yaml.Node, p string) { mark("max_length", v); i := d.integer(v, p, 0); r.MaxLength = &i }},
		field{name: "enum", setFunc: func(v *yaml.Node, p string) { mark("enum", v); r.Enum = d.enum(v, p) }},
		field{name: "regex", setFunc: func(v *yaml.Node, p string) { mark("regex", v); regex = d.str(v, p) }},
		field{name: "formats", setFunc: func(v *yaml.Node, p string) { mark("formats", v); formats = d.strs(v, p) }},
		field{name: "timezone", setFunc: func(v *yaml.Node, p string) { mark("timezone", v); tz = d.str(v, p) }},
		field{name: "expr", setFunc: func(v *yaml.Node, p string) { mark("expr", v); exprText = d.str(v, p) }},
		field{name: "message", setFunc: func(v *yaml.Node, p string) { r.Message = d.str(v, p) }},
	)
	if !ok {
		return nil
	}
	has := func(k string) bool { return nodes[k] != nil }
	switch {
	case has("expr") && has("field"):
		d.errorf(nodes["expr"], join(path, "expr"), "a rule checks a field or evaluates an expression, not both (split it in two)")
		return nil
	case has("expr"):
		for _, k := range []string{"type", "normalize", "min", "max", "min_length", "max_length", "enum", "regex", "formats", "timezone"} {
			if has(k) {
				d.errorf(nodes[k], join(path, k), "not allowed on an expression rule (it applies to field rules)")
			}
		}
		if r.Required {
			d.errorf(n, join(path, "required"), "not allowed on an expression rule")
		}
		r.Expr = exprText
		r.Program = d.compileExpr(nodes["expr"], join(path, "expr"), exprText, expr.AsBool())
		if r.Name == "" {
			r.Name = "expr " + strings.Join(strings.Fields(exprText), " ")
		}
		return r
	case !has("field"):
		d.errorf(n, path, "a rule needs field (checks on one field) or expr (a boolean expression)")
		return nil
	}
	if r.Field == "" && has("field") {
		d.errorf(nodes["field"], join(path, "field"), "empty field name")
	}
	if r.Name == "" {
		r.Name = r.Field
	}
	numeric := r.Type == TypeNumber || r.Type == TypeInteger
	textual := r.Type == TypeString
	need := func(key string, okType bool, want string) {
		if has(key) && !okType {
			d.errorf(nodes[key], join(path, key), "needs type %s (type is %q)", want, r.Type)
		}
	}
	need("min", numeric, "number or integer")
	need("max", numeric, "number or integer")
	need("min_length", textual, "string")
	need("max_length", textual, "string")
	need("regex", textual, "string")
	need("normalize", textual, "string")
	need("formats", r.Type == TypeTimestamp, "timestamp")
	need("timezone", r.Type == TypeTimestamp, "timestamp")
	need("enum", textual || numeric, "string, number or integer")
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		d.errorf(nodes["max"], join(path, "max"), "%v is below min %v", *r.Max, *r.Min)
	}
	if r.MinLength != nil && r.MaxLength != nil && *r.MinLength > *r.MaxLength {
		d.errorf(nodes["max_length"], join(path, "max_length"), "%d is below min_length %d", *r.MaxLength, *r.MinLength)
	}
	for _, e := range r.Enum {
		_, isStr := e.(string)
		if has("enum") && (isStr != textual) {
			d.errorf(nodes["enum"], join(path, "enum"), "value %v does not match type %s", e, r.Type)
			break
		}
	}
	if has("regex") {
		re, err := regexp.Compile(regex)
		if err != nil {
			d.errorf(nodes["regex"], join(path, "regex"), "not a valid regular expression (RE2 syntax): %v", err)
		}
		r.Regex = re
	}
	if err := checkTimeFormats(formats); err != nil {
		d.errorf(nodes["formats"], join(path, "formats"), "%v", err)
	}
	r.Time = TimeFormats{Formats: formats, Location: d.location(nodes["timezone"], join(path, "timezone"), tz)}
	return r
}

func (d *decoder) location(n *yaml.Node, path, tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		d.errorf(n, path, "unknown timezone %q (want an IANA name such as UTC or Europe/Berlin)", tz)
		return time.UTC
	}
	return loc
}

func (d *decoder) normalizers(n *yaml.Node, path string) []Normalizer {
	var out []Normalizer
	for i, s := range d.strs(n, path) {
		if !slices.Contains(normalizers, s) {
			p := path
			if n.Kind == yaml.SequenceNode {
				p, n = index(path, i), n.Content[i]
			}
			d.errorf(n, p, "unknown normalisation %q (want trim, upper or lower)", s)
			continue
		}
		out = append(out, Normalizer(s))
	}
	return out
}

func (d *decoder) enum(n *yaml.Node, path string) []any {
	var out []any
	d.list(n, path, "allowed values", func(i int, v *yaml.Node, p string) {
		if !d.scalar(v, p, "a string or number") {
			return
		}
		if v.Tag == "!!int" || v.Tag == "!!float" {
			out = append(out, d.number(v, p))
			return
		}
		out = append(out, v.Value)
	})
	if n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errorf(n, path, "empty, want at least one allowed value")
	}
	return out
}

// exprOptions are the options every pipeline expression compiles with: a
// missing field reads as nil instead of failing the whole record.
var exprOptions = []expr.Option{expr.AllowUndefinedVariables()}

func (d *decoder) compileExpr(n *yaml.Node, path, text string, opts ...expr.Option) *vm.Program {
	if strings.TrimSpace(text) == "" {
		d.errorf(n, path, "empty expression")
		return nil
	}
	prog, err := expr.Compile(text, append(slices.Clone(exprOptions), opts...)...)
	if err != nil {
		d.errorf(n, path, "expression does not compile: %s", oneLine(err.Error()))
		return nil
	}
	return prog
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// String describes the rule for messages.
func (r *Rule) String() string {
	if r.Expr != "" {
		return fmt.Sprintf("rule %s", r.Name)
	}
	return fmt.Sprintf("rule on %s", r.Field)
}
