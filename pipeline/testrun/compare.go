package testrun

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// compare lists how got differs from want, one line per difference, in
// the sections want has.
func compare(want, got *Outputs) []string {
	var diffs []string
	for _, name := range slices.Sorted(maps.Keys(want.Clean)) {
		g := got.Clean[name]
		if g == nil {
			diffs = append(diffs, fmt.Sprintf("clean %s: no such dataset in the pipeline", name))
			continue
		}
		diffs = append(diffs, compareRows("clean "+name, want.Clean[name], g)...)
	}
	for _, name := range slices.Sorted(maps.Keys(want.Marts)) {
		g := got.Marts[name]
		if g == nil {
			diffs = append(diffs, fmt.Sprintf("mart %s: no such mart in the pipeline", name))
			continue
		}
		diffs = append(diffs, compareRows("mart "+name, want.Marts[name], g)...)
	}
	if want.DeadLetters != nil {
		diffs = append(diffs, compareList("dead letters", *want.DeadLetters, *got.DeadLetters,
			func(w, g DeadLetter) bool { return w.matches(g) }, DeadLetter.String)...)
	}
	if want.Alerts != nil {
		diffs = append(diffs, compareList("alerts", *want.Alerts, *got.Alerts,
			func(w, g Alert) bool { return w.matches(g) }, Alert.String)...)
	}
	return diffs
}

// compareRows compares rows as multisets: each expected row takes an
// equal row; what is left on both sides is paired by key for a
// field-by-field diff, and the rest is reported missing or unexpected.
func compareRows(what string, want, got *Rows) []string {
	fields := want.Fields
	if len(fields) == 0 && !want.Exact {
		set := map[string]bool{}
		for _, r := range want.Rows {
			for k := range r {
				set[k] = true
			}
		}
		fields = slices.Sorted(maps.Keys(set))
	}
	project := func(r map[string]any) map[string]any {
		if len(fields) == 0 {
			return normalize(r)
		}
		out := make(map[string]any, len(fields))
		for _, f := range fields {
			out[f] = normalizeValue(r[f])
		}
		return out
	}
	var ws, gs []map[string]any
	for _, r := range want.Rows {
		ws = append(ws, project(r))
	}
	for _, r := range got.Rows {
		gs = append(gs, project(r))
	}
	sortRows(ws)
	sortRows(gs)
	used := make([]bool, len(gs))
	var restW []map[string]any
	for _, w := range ws {
		found := false
		for j, g := range gs {
			if !used[j] && rowEqual(w, g) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			restW = append(restW, w)
		}
	}
	var restG []map[string]any
	for j, g := range gs {
		if !used[j] {
			restG = append(restG, g)
		}
	}
	if len(restW) == 0 && len(restG) == 0 {
		return nil
	}
	key := want.Key
	if len(key) == 0 {
		key = got.Key
	}
	if len(key) == 0 {
		key = textColumns(ws, gs)
	}
	head := fmt.Sprintf("%s: %d row(s) expected, %d got, %d differ", what, len(ws), len(gs), max(len(restW), len(restG)))
	diffs := []string{head}
	paired := make([]bool, len(restG))
	for _, w := range restW {
		k := keyOf(w, key)
		j := -1
		if k != "" {
			for i, g := range restG {
				if !paired[i] && keyOf(g, key) == k {
					j = i
					break
				}
			}
		}
		if j < 0 {
			diffs = append(diffs, "  - want, missing:   "+rowString(w))
			continue
		}
		paired[j] = true
		g := restG[j]
		var parts []string
		for _, f := range slices.Sorted(maps.Keys(union(w, g))) {
			if !valueEqual(w[f], g[f]) {
				parts = append(parts, fmt.Sprintf("%s: want %s, got %s", f, valueString(w[f]), valueString(g[f])))
			}
		}
		diffs = append(diffs, fmt.Sprintf("  ~ %s: %s", k, strings.Join(parts, "; ")))
	}
	for i, g := range restG {
		if !paired[i] {
			diffs = append(diffs, "  + got, unexpected: "+rowString(g))
		}
	}
	return diffs
}

func union(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	for k, v := range b {
		if _, ok := out[k]; !ok {
			out[k] = v
		}
	}
	return out
}

// textColumns are the columns whose values are text on every row: in a
// mart, its GROUP BY columns as a rule.
func textColumns(sets ...[]map[string]any) []string {
	counts := map[string]int{}
	total := 0
	for _, rows := range sets {
		for _, r := range rows {
			total++
			for k, v := range r {
				if _, ok := v.(string); ok {
					counts[k]++
				}
			}
		}
	}
	var out []string
	for k, n := range counts {
		if n == total {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func keyOf(r map[string]any, key []string) string {
	var parts []string
	for _, k := range key {
		v, ok := r[k]
		if !ok || v == nil {
			return ""
		}
		parts = append(parts, k+"="+valueString(v))
	}
	return strings.Join(parts, " ")
}

// compareList matches each expectation to one item; every item must be
// matched.
func compareList[W, G any](what string, want []W, got []G, matchFunc func(W, G) bool, strFunc func(G) string) []string {
	used := make([]bool, len(got))
	var missing []int
	for i, w := range want {
		found := false
		for j, g := range got {
			if !used[j] && matchFunc(w, g) {
				used[j], found = true, true
				break
			}
		}
		if !found {
			missing = append(missing, i)
		}
	}
	var extra []string
	for j, g := range got {
		if !used[j] {
			extra = append(extra, strFunc(g))
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	diffs := []string{fmt.Sprintf("%s: %d expected, %d got", what, len(want), len(got))}
	for _, i := range missing {
		diffs = append(diffs, fmt.Sprintf("  - want, missing:   %s", describe(want[i])))
	}
	for _, e := range extra {
		diffs = append(diffs, "  + got, unexpected: "+e)
	}
	return diffs
}

func describe(v any) string {
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprint(v)
}

func (w DeadLetter) matches(g DeadLetter) bool {
	if (w.Dataset != "" && w.Dataset != g.Dataset) || (w.Step != "" && w.Step != g.Step) {
		return false
	}
	if w.Reason != "" && !matches(w.Reason, w.re, g.Reason) {
		return false
	}
	if w.Data != "" && w.Data != g.Data {
		return false
	}
	for k, v := range w.Record {
		if !valueEqual(normalizeValue(v), normalizeValue(g.Record[k])) {
			return false
		}
	}
	return true
}

func (w DeadLetter) String() string {
	s := strings.Trim(w.Step+"/"+w.Dataset, "/")
	if s == "" {
		s = "any step"
	}
	s += fmt.Sprintf(": reason %q", w.Reason)
	if len(w.Record) > 0 {
		s += " record " + rowString(normalize(w.Record))
	}
	if w.Data != "" {
		s += fmt.Sprintf(" data %q", w.Data)
	}
	return s
}

func (w Alert) matches(g Alert) bool {
	return (w.Rule == "" || w.Rule == g.Rule) && (w.Key == "" || w.Key == g.Key) && (w.Severity == "" || w.Severity == g.Severity) &&
		(w.Message == "" || matches(w.Message, w.re, g.Message))
}

func (w Alert) String() string {
	s := w.Rule
	if w.Key != "" {
		s += " key " + w.Key
	}
	if w.Severity != "" {
		s += " (" + w.Severity + ")"
	}
	if w.Message != "" {
		s += fmt.Sprintf(": %q", w.Message)
	}
	return s
}

// normalize makes a row's values comparable: numbers as float64, times
// (YAML timestamps) as RFC 3339 text, nested values through JSON.
func normalize(r map[string]any) map[string]any {
	out := make(map[string]any, len(r))
	for k, v := range r {
		if v = normalizeValue(v); v != nil {
			out[k] = v // null and absent are the same
		}
	}
	return out
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case nil, string, bool, float64:
		return v
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case uint64:
		return float64(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

func rowEqual(a, b map[string]any) bool {
	for k := range union(a, b) {
		if !valueEqual(a[k], b[k]) {
			return false
		}
	}
	return true
}

// valueEqual compares numbers to 1e-9 relative (sums add in any order),
// timestamps as instants, the rest as JSON.
func valueEqual(a, b any) bool {
	fa, oka := a.(float64)
	fb, okb := b.(float64)
	if oka && okb {
		return fa == fb || math.Abs(fa-fb) <= 1e-9*math.Max(math.Abs(fa), math.Abs(fb))
	}
	sa, oka := a.(string)
	sb, okb := b.(string)
	if oka && okb && sa != sb {
		ta, ea := parseTime(sa)
		tb, eb := parseTime(sb)
		return ea == nil && eb == nil && ta.Equal(tb)
	}
	return valueString(a) == valueString(b)
}

// parseTime reads timestamps as JSON records (RFC 3339) and DuckDB
// ("2026-01-02 10:00:00+00") write them.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a timestamp: %q", s)
}

func valueString(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func rowString(r map[string]any) string { return valueString(r) } // keys sorted by encoding/json

func sortRows(rows []map[string]any) {
	sort.SliceStable(rows, func(i, j int) bool { return rowString(rows[i]) < rowString(rows[j]) })
}
