package duckdb_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

func TestQuote(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, ident, literal string }{
		{in: "", ident: `""`, literal: `''`},
		{in: "plain", ident: `"plain"`, literal: `'plain'`},
		{in: `it's "x"`, ident: `"it's ""x"""`, literal: `'it''s "x"'`},
	} {
		require.Equal(t, tc.ident, duckdb.Ident(tc.in), tc.in)
		require.Equal(t, tc.literal, duckdb.Literal(tc.in), tc.in)
	}
}

func TestFirstWord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ q, want string }{
		{q: "", want: ""},
		{q: "SELECT 1", want: "SELECT"},
		{q: "  with x AS (SELECT 1) SELECT * FROM x", want: "with"},
		{q: "-- a comment\n/* another */ ((SELECT 1))", want: "SELECT"},
		{q: "FROM t", want: "FROM"},
		{q: "-- only a comment", want: ""},
		{q: "/* unclosed", want: ""},
		{q: "SUMMARIZE", want: "SUMMARIZE"},
		{q: "DROP;TABLE", want: "DROP"},
	} {
		require.Equal(t, tc.want, duckdb.FirstWord(tc.q), tc.q)
	}
}
