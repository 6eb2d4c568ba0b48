package testrun

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCompareRows(t *testing.T) {
	t.Parallel()
	rows := func(rs ...map[string]any) []map[string]any { return rs }
	for _, tc := range []struct {
		name      string
		want, got *Rows
		diffs     []string
	}{
		{
			name: "equal in another order, numbers to 1e-9, timestamps as instants, null as absent",
			want: &Rows{Rows: rows(map[string]any{"k": "b", "v": 0.3}, map[string]any{"k": "a", "ts": "2026-10-01T10:00:00Z", "x": nil})},
			got:  &Rows{Rows: rows(map[string]any{"k": "a", "ts": "2026-10-01 10:00:00+00", "extra": 1.0}, map[string]any{"k": "b", "v": 0.1 + 0.2})},
		},
		{
			name: "a row that differs is paired by key, the rest missing or unexpected",
			want: &Rows{Rows: rows(map[string]any{"k": "a", "v": 1}, map[string]any{"k": "b", "v": 2})},
			got:  &Rows{Rows: rows(map[string]any{"k": "a", "v": 3.0}, map[string]any{"k": "c", "v": 2.0})},
			diffs: []string{
				"mart m: 2 row(s) expected, 2 got, 2 differ",
				`  ~ k="a": v: want 1, got 3`,
				`  - want, missing:   {"k":"b","v":2}`,
				`  + got, unexpected: {"k":"c","v":2}`,
			},
		},
		{
			name:  "exact compares every field",
			want:  &Rows{Exact: true, Key: []string{"k"}, Rows: rows(map[string]any{"k": "a"})},
			got:   &Rows{Rows: rows(map[string]any{"k": "a", "note": "drift"})},
			diffs: []string{"mart m: 1 row(s) expected, 1 got, 1 differ", `  ~ k="a": note: want null, got "drift"`},
		},
		{
			name:  "a repeated row counts",
			want:  &Rows{Rows: rows(map[string]any{"k": "a"})},
			got:   &Rows{Rows: rows(map[string]any{"k": "a"}, map[string]any{"k": "a"})},
			diffs: []string{"mart m: 1 row(s) expected, 2 got, 1 differ", `  + got, unexpected: {"k":"a"}`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.diffs, compareRows("mart m", tc.want, tc.got))
		})
	}
}
