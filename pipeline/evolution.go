package pipeline

import (
	"fmt"
	"regexp"
	"strings"
)

// CheckSchemaChange compares ds's schema with the columns its lake was
// written with (lake, from the data dir's lake manifest) and returns
// what a running fleet would fail on, each error at the file position
// that causes it: a column whose type changed (old files cannot be read
// as the new type without a rebuild), or a column dropped from the schema
// while a mart of spec still uses it. An added column needs nothing: old
// lake files read it as NULL.
func CheckSchemaChange(spec *Spec, ds *Dataset, lake []Column) []error {
	var errs []error
	for _, old := range lake {
		i := ds.columnIndex(old.Name)
		if i < 0 {
			for _, m := range spec.Marts {
				if m.Dataset == ds.Name && usesColumn(m.SQL, old.Name) {
					errs = append(errs, &FieldError{
						Pos: m.Pos, Field: "marts." + m.Name + ".sql",
						Msg: fmt.Sprintf("uses column %s, which the schema of dataset %s no longer has (the lake holds it as %s): put it back, or change the mart first", old.Name, ds.Name, old.Type),
					})
				}
			}
			continue
		}
		now := ds.Schema[i]
		if CanonicalType(now.Type) != CanonicalType(old.Type) {
			pos := ds.Pos
			if i < len(ds.SchemaPos) {
				pos = ds.SchemaPos[i]
			}
			errs = append(errs, &FieldError{
				Pos: pos, Field: fmt.Sprintf("datasets.%s.schema[%d].type", ds.Name, i),
				Msg: fmt.Sprintf("column %s changes type from %s (the lake's) to %s: the lake's files cannot be read as the new type; add a new column instead, or start from a new data dir", old.Name, old.Type, now.Type),
			})
		}
	}
	return errs
}

func (d *Dataset) columnIndex(name string) int {
	for i, c := range d.Schema {
		if strings.EqualFold(c.Name, name) {
			return i
		}
	}
	return -1
}

// usesColumn says whether sql names column (as a word, in any case) or
// selects every column (*), which makes a dropped column a changed mart.
func usesColumn(sql, column string) bool {
	if strings.Contains(sql, "*") && regexp.MustCompile(`(?i)(select|,)\s*(\w+\.)?\*`).MatchString(sql) {
		return true
	}
	return regexp.MustCompile(`(?i)(^|\W)` + regexp.QuoteMeta(column) + `($|\W)`).MatchString(sql)
}

// typeAliases are DuckDB's other names of a type.
var typeAliases = map[string]string{
	"TEXT": "VARCHAR", "STRING": "VARCHAR", "BOOL": "BOOLEAN", "INT": "INTEGER", "REAL": "FLOAT",
	"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ", "NUMERIC": "DECIMAL",
}

// CanonicalType is a column type with DuckDB's aliases resolved and a
// VARCHAR's length dropped (DuckDB ignores it), for comparing types.
func CanonicalType(t string) string {
	t = strings.ToUpper(strings.TrimSpace(t))
	base, args, _ := strings.Cut(t, "(")
	base = strings.TrimSpace(base)
	if a, ok := typeAliases[base]; ok {
		base = a
	}
	if base == "VARCHAR" || args == "" {
		return base
	}
	return base + "(" + strings.ReplaceAll(args, " ", "")
}
