package pipeline

import (
	"slices"
	"strings"
)

// check resolves cross-references once every part is parsed.
func (d *decoder) check(s *Spec) {
	for _, l := range s.Lookups {
		if l.CSV == "" {
			continue
		}
		l.CSV = s.Path(l.CSV)
		cols, err := l.Columns()
		if err != nil {
			d.errs = append(d.errs, &FieldError{Pos: l.Pos, Field: "lookups." + l.Name + ".csv", Msg: err.Error()})
			continue
		}
		if !slices.Contains(cols, l.Key) {
			d.errs = append(d.errs, &FieldError{Pos: l.Pos, Field: "lookups." + l.Name + ".key", Msg: "CSV header " + strings.Join(cols, ",") + " has no column " + l.Key})
		}
		for c := range l.Types {
			if !slices.Contains(cols, c) {
				d.errs = append(d.errs, &FieldError{Pos: l.Pos, Field: "lookups." + l.Name + ".types." + c, Msg: "no such column in the CSV header " + strings.Join(cols, ",")})
			}
		}
	}
	for _, ds := range s.Datasets {
		path := "datasets." + ds.Name
		if ds.Key != "" {
			if _, ok := ds.Column(ds.Key); !ok {
				d.errs = append(d.errs, &FieldError{Pos: ds.Pos, Field: path + ".key", Msg: "key " + ds.Key + " is not a schema column"})
			}
		}
		if ds.Ingest.Watch != "" {
			ds.Ingest.Watch = s.Path(ds.Ingest.Watch)
		}
		for i, t := range ds.Transforms {
			if t.Op != OpLookup {
				continue
			}
			p := index(path+".transform", i) + ".lookup"
			l := s.Lookup(t.Lookup.Table)
			if l == nil {
				d.errs = append(d.errs, &FieldError{Pos: t.Pos, Field: p + ".table", Msg: "no lookup table " + t.Lookup.Table + " (lookups has " + names(s.Lookups) + ")"})
				continue
			}
			cols, err := l.Columns()
			if err != nil {
				continue // reported above
			}
			for _, f := range t.Lookup.Fields {
				if !slices.Contains(cols, f.From) {
					d.errs = append(d.errs, &FieldError{Pos: t.Pos, Field: p + ".fields", Msg: "table " + l.Name + " has no column " + f.From + " (it has " + strings.Join(cols, ", ") + ")"})
				}
			}
		}
	}
	for _, m := range s.Marts {
		if m.Dataset != "" && s.Dataset(m.Dataset) == nil {
			d.errs = append(d.errs, &FieldError{Pos: m.Pos, Field: "marts." + m.Name + ".dataset", Msg: "no dataset " + m.Dataset + " (datasets are " + strings.Join(s.DatasetNames(), ", ") + ")"})
		}
	}
	d.checkAlerts(s)
}

func names(ls []*Lookup) string {
	if len(ls) == 0 {
		return "none"
	}
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return strings.Join(out, ", ")
}
