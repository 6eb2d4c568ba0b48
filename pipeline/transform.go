package pipeline

import (
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Transform operations, one per list item of a dataset's transform.
const (
	OpTrim      = "trim"      // trim: [fields]        Unicode white space at both ends
	OpUpper     = "upper"     // upper: [fields]
	OpLower     = "lower"     // lower: [fields]
	OpNumber    = "number"    // number: [fields]      numeric strings become JSON numbers
	OpTimestamp = "timestamp" // timestamp: {field|fields, formats, timezone}  to UTC RFC 3339
	OpLookup    = "lookup"    // lookup: {table, key, fields, missing, default}
	OpDerive    = "derive"    // derive: {field, expr}
	OpMask      = "mask"      // mask: {field, action: drop|redact|hash, ...}
	OpDrop      = "drop"      // drop: [fields]
	OpRename    = "rename"    // rename: {old: new, ...}
)

var transformOps = []string{OpTrim, OpUpper, OpLower, OpNumber, OpTimestamp, OpLookup, OpDerive, OpMask, OpDrop, OpRename}

// Missing-key policies of a lookup.
const (
	MissingDLQ     = "dlq"     // dead-letter the record
	MissingDefault = "default" // set the fields from Default
	MissingPass    = "pass"    // leave the fields unset
)

// Mask actions.
const (
	MaskDrop   = "drop"
	MaskRedact = "redact"
	MaskHash   = "hash"
)

// Transform is one step of a dataset's transform list. Op says which of
// the other fields apply.
type Transform struct {
	Op     string
	Fields []string // trim, upper, lower, number, drop, timestamp
	Time   TimeFormats
	Lookup *LookupRef
	// Field and Program are the target and the compiled Expr of a derive.
	Field   string
	Expr    string
	Program *vm.Program
	Mask    *Mask
	Renames []Rename
	Pos     Pos
}

// LookupRef enriches a record from a lookup table.
type LookupRef struct {
	Table string
	// Key is the record field whose value is looked up in the table's key.
	Key string
	// Fields maps table columns to the record fields they are copied to.
	Fields []Rename
	// Missing is dlq, default or pass; default dlq.
	Missing string
	// Default holds the table columns used when the key is missing and
	// Missing is "default".
	Default map[string]any
}

// Mask hides a PII field.
type Mask struct {
	Field  string
	Action string // drop, redact or hash
	// Into is the field a hash is written to; default <field>_hash. The
	// original field is removed unless Keep.
	Into string
	Keep bool
	// Normalize is applied before hashing, so " A@B.com" and "a@b.com" hash alike.
	Normalize []Normalizer
	// Salt is prepended to the value before hashing; SaltEnv names an
	// environment variable holding it instead (a secret kept out of the
	// file), read when the transform step starts.
	Salt    string
	SaltEnv string
	// With replaces a redacted value; default "REDACTED".
	With string
}

// Rename is a from -> to field pair.
type Rename struct{ From, To string }

func (d *decoder) parseTransform(n *yaml.Node, path string) *Transform {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		if n.Kind == yaml.MappingNode && len(n.Content) > 2 {
			var ops []string
			for i := 0; i < len(n.Content); i += 2 {
				ops = append(ops, n.Content[i].Value)
			}
			d.errorf(n, path, "one operation per list item, got %s (write one - item each)", strings.Join(ops, ", "))
			return nil
		}
		d.errorf(n, path, "got %s, want one operation such as {trim: [field]} (one of %s)", kindName(n), strings.Join(transformOps, ", "))
		return nil
	}
	k, v := n.Content[0], resolve(n.Content[1])
	t := &Transform{Op: k.Value, Pos: d.pos(k)}
	p := join(path, k.Value)
	switch t.Op {
	case OpTrim, OpUpper, OpLower, OpNumber, OpDrop:
		t.Fields = d.fieldList(v, p)
	case OpTimestamp:
		var formats []string
		var tz string
		var fmtNode, tzNode *yaml.Node
		d.mapping(v, p,
			field{name: "field", setFunc: func(v *yaml.Node, p string) { t.Fields = append(t.Fields, d.str(v, p)) }},
			field{name: "fields", setFunc: func(v *yaml.Node, p string) { t.Fields = append(t.Fields, d.fieldList(v, p)...) }},
			field{name: "formats", setFunc: func(v *yaml.Node, p string) { fmtNode = v; formats = d.strs(v, p) }},
			field{name: "timezone", setFunc: func(v *yaml.Node, p string) { tzNode = v; tz = d.str(v, p) }},
		)
		if len(t.Fields) == 0 && v.Kind == yaml.MappingNode {
			d.errorf(v, p, "needs field or fields")
		}
		if err := checkTimeFormats(formats); err != nil {
			d.errorf(fmtNode, join(p, "formats"), "%v", err)
		}
		t.Time = TimeFormats{Formats: formats, Location: d.location(tzNode, join(p, "timezone"), tz)}
	case OpLookup:
		t.Lookup = d.parseLookupRef(v, p)
	case OpDerive:
		var exprNode *yaml.Node
		d.mapping(v, p,
			field{name: "field", required: true, setFunc: func(v *yaml.Node, p string) { t.Field = d.str(v, p) }},
			field{name: "expr", required: true, setFunc: func(v *yaml.Node, p string) { exprNode = v; t.Expr = d.str(v, p) }},
		)
		if exprNode != nil {
			t.Program = d.compileExpr(exprNode, join(p, "expr"), t.Expr)
		}
	case OpMask:
		t.Mask = d.parseMask(v, p)
	case OpRename:
		d.entries(v, p, "field", func(from string, k, v *yaml.Node, p string) {
			to := d.str(v, p)
			if to == "" {
				d.errorf(v, p, "empty new name")
			}
			t.Renames = append(t.Renames, Rename{From: from, To: to})
		})
	default:
		d.errorf(k, p, "unknown transform (want one of %s)", strings.Join(transformOps, ", "))
		return nil
	}
	return t
}

func (d *decoder) fieldList(n *yaml.Node, path string) []string {
	fields := d.strs(n, path)
	for _, f := range fields {
		if f == "" {
			d.errorf(n, path, "empty field name")
		}
	}
	if len(fields) == 0 && n.Kind == yaml.SequenceNode {
		d.errorf(n, path, "empty, want at least one field")
	}
	return fields
}

func (d *decoder) parseLookupRef(n *yaml.Node, path string) *LookupRef {
	l := &LookupRef{Missing: MissingDLQ}
	var defNode *yaml.Node
	d.mapping(n, path,
		field{name: "table", required: true, setFunc: func(v *yaml.Node, p string) { l.Table = d.str(v, p) }},
		field{name: "key", required: true, setFunc: func(v *yaml.Node, p string) { l.Key = d.str(v, p) }},
		field{name: "fields", required: true, setFunc: func(v *yaml.Node, p string) {
			if v.Kind == yaml.SequenceNode || v.Kind == yaml.ScalarNode {
				for _, f := range d.fieldList(v, p) {
					l.Fields = append(l.Fields, Rename{From: f, To: f})
				}
				return
			}
			d.entries(v, p, "table column", func(from string, _, v *yaml.Node, p string) {
				l.Fields = append(l.Fields, Rename{From: from, To: d.str(v, p)})
			})
		}},
		field{name: "missing", setFunc: func(v *yaml.Node, p string) { l.Missing = d.oneOf(v, p, MissingDLQ, MissingDefault, MissingPass) }},
		field{name: "default", setFunc: func(v *yaml.Node, p string) {
			defNode = v
			if m, ok := d.value(v, p).(map[string]any); ok {
				l.Default = m
			} else {
				d.errorf(v, p, "got %s, want a mapping of table columns to values", kindName(v))
			}
		}},
	)
	switch {
	case l.Missing == MissingDefault && defNode == nil:
		d.errorf(n, join(path, "default"), "missing: default needs a default row")
	case l.Missing != MissingDefault && defNode != nil:
		d.errorf(defNode, join(path, "default"), "only used with missing: default (missing is %s)", l.Missing)
	}
	return l
}

func (d *decoder) parseMask(n *yaml.Node, path string) *Mask {
	m := &Mask{}
	nodes := map[string]*yaml.Node{}
	d.mapping(n, path,
		field{name: "field", required: true, setFunc: func(v *yaml.Node, p string) { m.Field = d.str(v, p) }},
		field{name: "action", required: true, setFunc: func(v *yaml.Node, p string) { m.Action = d.oneOf(v, p, MaskDrop, MaskRedact, MaskHash) }},
		field{name: "into", setFunc: func(v *yaml.Node, p string) { nodes["into"] = v; m.Into = d.str(v, p) }},
		field{name: "keep", setFunc: func(v *yaml.Node, p string) { nodes["keep"] = v; m.Keep = d.boolean(v, p) }},
		field{name: "normalize", setFunc: func(v *yaml.Node, p string) { nodes["normalize"] = v; m.Normalize = d.normalizers(v, p) }},
		field{name: "salt", setFunc: func(v *yaml.Node, p string) { nodes["salt"] = v; m.Salt = d.str(v, p) }},
		field{name: "salt_env", setFunc: func(v *yaml.Node, p string) { nodes["salt_env"] = v; m.SaltEnv = d.str(v, p) }},
		field{name: "with", setFunc: func(v *yaml.Node, p string) { nodes["with"] = v; m.With = d.str(v, p) }},
	)
	hashOnly := []string{"into", "keep", "normalize", "salt", "salt_env"}
	for _, k := range hashOnly {
		if nodes[k] != nil && m.Action != MaskHash {
			d.errorf(nodes[k], join(path, k), "only used with action: hash")
		}
	}
	if nodes["with"] != nil && m.Action != MaskRedact {
		d.errorf(nodes["with"], join(path, "with"), "only used with action: redact")
	}
	if nodes["salt"] != nil && nodes["salt_env"] != nil {
		d.errorf(nodes["salt_env"], join(path, "salt_env"), "give salt or salt_env, not both")
	}
	if m.Action == MaskHash && m.Into == "" {
		m.Into = m.Field + "_hash"
	}
	if m.Action == MaskRedact && m.With == "" {
		m.With = "REDACTED"
	}
	return m
}

// Outputs lists the fields a transform writes, for reference checks.
func (t *Transform) Outputs() []string {
	switch t.Op {
	case OpDerive:
		return []string{t.Field}
	case OpLookup:
		var out []string
		for _, f := range t.Lookup.Fields {
			out = append(out, f.To)
		}
		return out
	case OpMask:
		if t.Mask.Action == MaskHash {
			return []string{t.Mask.Into}
		}
	case OpRename:
		var out []string
		for _, r := range t.Renames {
			out = append(out, r.To)
		}
		return out
	}
	return slices.Clone(t.Fields)
}
