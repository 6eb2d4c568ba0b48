package pipeline

import "math"

// Fields is a record taken apart: its top-level fields, each name once
// (the last one written, as in a decoded record), values as written. The
// steps decode a record into Fields once and read, change and encode it
// from there. The zero value is an empty record; Scan reuses its memory.
type Fields struct {
	// list holds the fields; a deleted one stays, its kind KindMissing
	// (moving fields, which hold pointers, costs more than skipping one).
	list    []Field
	deleted int
	// order is AppendJSON's sorted order of list, and sorted the names in
	// it: records of a dataset mostly come with the same fields in the
	// same order, and then the last order is right again.
	order []uint16
	names []byte // the sorted names, copied: the record's bytes may be reused
	ends  []int  // where each name ends in names
}

// Scan takes data apart as one record. It fails as [DecodeRecord] does,
// with the same errors. The fields view data, which must not change
// while they are used.
func (f *Fields) Scan(data []byte) error {
	f.deleted = 0
	var ok bool
	if f.list, ok = scanObject(data, f.list[:0]); ok {
		f.dedupe()
		return nil
	}
	rec, err := DecodeRecord(data)
	if err != nil {
		f.list = f.list[:0]
		return err
	}
	f.list = fieldsFromRecord(rec, f.list[:0])
	return nil
}

// FromRecord makes f hold a decoded record's fields.
func (f *Fields) FromRecord(rec Record) { f.list, f.deleted = fieldsFromRecord(rec, f.list[:0]), 0 }

// dedupe keeps the last of fields with one name, as a decoded map does.
func (f *Fields) dedupe() {
	if len(f.list) > 32 {
		last := make(map[string]int, len(f.list))
		for i, fl := range f.list {
			last[fl.Name] = i
		}
		if len(last) == len(f.list) {
			return
		}
		kept := f.list[:0]
		for i, fl := range f.list {
			if last[fl.Name] == i {
				kept = append(kept, fl)
			}
		}
		f.list = kept
		return
	}
	// A bit per (length, last byte) of each name: when no two names share
	// one, no two are equal, and the pairs need no comparing.
	var seen uint64
	clash := false
	for i := range f.list {
		n := f.list[i].Name
		bit := uint64(1) << ((uint(len(n)) * 7) % 64)
		if n != "" {
			bit = uint64(1) << ((uint(len(n))*7 + uint(n[len(n)-1])) % 64)
		}
		if seen&bit != 0 {
			clash = true
			break
		}
		seen |= bit
	}
	if !clash {
		return
	}
	for i := 1; i < len(f.list); i++ {
		for j := 0; j < i; j++ {
			if f.list[j].Name == f.list[i].Name {
				f.list[j].Value = f.list[i].Value
				f.list = append(f.list[:i], f.list[i+1:]...)
				i--
				break
			}
		}
	}
}

// Len is the number of fields.
func (f *Fields) Len() int { return len(f.list) - f.deleted }

// All is the fields, in no particular order. Read only.
func (f *Fields) All() []Field {
	if f.deleted > 0 {
		kept := f.list[:0]
		for _, fl := range f.list {
			if fl.Value.kind != KindMissing {
				kept = append(kept, fl)
			}
		}
		f.list, f.deleted = kept, 0
	}
	return f.list
}

// Get returns the value of field name and whether the record has it.
func (f *Fields) Get(name string) (Value, bool) {
	for i := range f.list {
		if f.list[i].Name == name {
			return f.list[i].Value, f.list[i].Value.kind != KindMissing
		}
	}
	return Value{}, false
}

// Set sets field name to v.
func (f *Fields) Set(name string, v Value) {
	for i := range f.list {
		if fl := &f.list[i]; fl.Name == name {
			if fl.Value.kind == KindMissing {
				f.deleted--
			}
			fl.Value = v
			return
		}
	}
	f.list = append(f.list, Field{Name: name, Value: v, plain: plainName(name)})
}

// Delete removes field name.
func (f *Fields) Delete(name string) {
	for i := range f.list {
		if fl := &f.list[i]; fl.Name == name {
			if fl.Value.kind != KindMissing {
				fl.Value.kind = KindMissing
				f.deleted++
			}
			return
		}
	}
}

// Record is the record as [DecodeRecord] gives it.
func (f *Fields) Record() Record {
	rec := make(Record, f.Len())
	for _, fl := range f.list {
		if fl.Value.kind != KindMissing {
			rec[fl.Name] = fl.Value.Any()
		}
	}
	return rec
}

// Env is what an expression sees of the record, as [ExprEnv] gives it.
func (f *Fields) Env() map[string]any {
	env := make(map[string]any, f.Len())
	for _, fl := range f.list {
		if fl.Value.kind != KindMissing {
			env[fl.Name] = fl.Value.exprValue()
		}
	}
	return env
}

// AppendJSON appends the record as [EncodeRecord] writes it: compact, keys
// sorted, <, > and & not escaped.
func (f *Fields) AppendJSON(dst []byte) ([]byte, error) {
	if len(f.list) > math.MaxUint16 {
		return appendAny(dst, f.Record())
	}
	if !f.sameOrder() {
		// Sort indexes, not fields: a field is large and holds pointers.
		f.order = f.order[:0]
		for i := range f.list {
			f.order = append(f.order, uint16(i))
		}
		for i := 1; i < len(f.order); i++ {
			for j := i; j > 0 && nameLess(f.list[f.order[j]].Name, f.list[f.order[j-1]].Name); j-- {
				f.order[j], f.order[j-1] = f.order[j-1], f.order[j]
			}
		}
		f.names, f.ends = f.names[:0], f.ends[:0]
		for _, k := range f.order {
			f.names = append(f.names, f.list[k].Name...)
			f.ends = append(f.ends, len(f.names))
		}
	}
	dst = append(dst, '{')
	first := true
	for _, k := range f.order {
		fl := &f.list[k]
		if fl.Value.kind == KindMissing {
			continue // deleted
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		if fl.plain {
			dst = append(append(append(dst, '"'), fl.Name...), '"')
		} else {
			dst = appendString(dst, bytesOf(fl.Name))
		}
		dst = append(dst, ':')
		var err error
		if dst, err = fl.Value.AppendJSON(dst); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// fieldsFromRecord takes a decoded record apart, for records the scanner
// leaves to DecodeRecord.
func fieldsFromRecord(rec Record, out []Field) []Field {
	for k, v := range rec {
		out = append(out, Field{Name: k, Value: ValueOf(v), plain: plainName(k)})
	}
	return out
}

// sameOrder reports whether the last sorted order fits the fields now.
func (f *Fields) sameOrder() bool {
	if len(f.order) != len(f.list) {
		return false
	}
	start := 0
	for i, k := range f.order {
		if int(k) >= len(f.list) || f.list[k].Name != string(f.names[start:f.ends[i]]) {
			return false
		}
		start = f.ends[i]
	}
	return true
}

// nameLess is a < b, deciding on the first byte inline: most field names
// differ there.
func nameLess(a, b string) bool {
	if a != "" && b != "" && a[0] != b[0] {
		return a[0] < b[0]
	}
	return a < b
}
