package aggregate

import (
	"fmt"
	"testing"
	"time"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

// TestLakeDateIsTheUTCDate checks the lake's date column, computed by
// arithmetic for a TIMESTAMPTZ, against the instant's UTC date, at day
// edges, before 1970 and at the ends of the range the journal admits; a
// record without the timestamp takes its publish date.
func TestLakeDateIsTheUTCDate(t *testing.T) {
	t.Parallel()
	db, err := duckdb.Open("", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ds := DatasetConfig{Name: "events", Key: "id", Schema: []Column{{"id", "VARCHAR"}, {"at", "TIMESTAMPTZ"}}}
	published := time.Date(2026, 12, 3, 23, 59, 59, 999_999_000, time.UTC)
	for _, in := range []string{
		"1970-01-01T00:00:00Z",
		"1969-12-31T23:59:59.999999Z",
		"1969-12-31T00:00:00Z",
		"2026-10-31T23:59:59.999999-01:00",
		"2026-11-01T00:30:00+02:00",
		"2024-02-29T23:59:59+00:00",
		"0001-01-01T00:00:00Z",
		"1600-02-29T12:00:00Z",
		"9999-12-31T23:59:59.999999Z",
		"",
	} {
		want := published.Format(time.DateOnly)
		at := "CAST(NULL AS TIMESTAMPTZ)"
		if in != "" {
			ts, err := time.Parse(time.RFC3339Nano, in)
			if err != nil {
				t.Fatal(err)
			}
			want, at = ts.UTC().Format(time.DateOnly), "TIMESTAMPTZ "+duckdb.Literal(in)
		}
		var got string
		q := fmt.Sprintf("SELECT CAST(%s AS VARCHAR) FROM (SELECT %s AS at, %d AS _jf_at)", lakeDateExpr(ds), at, published.UnixMicro())
		if err := db.QueryRow(q).Scan(&got); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if got != want {
			t.Errorf("lake date of %q is %s, want %s", in, got, want)
		}
	}
}
