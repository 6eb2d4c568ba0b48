package pipeline

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonicalType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"text": "VARCHAR", "VARCHAR(20)": "VARCHAR", "int": "INTEGER", "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
		"numeric(18, 2)": "DECIMAL(18,2)", "DECIMAL(18,2)": "DECIMAL(18,2)", "DOUBLE": "DOUBLE",
	} {
		require.Equal(t, want, CanonicalType(in), in)
	}
}

func TestUsesColumn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sql  string
		uses bool
	}{
		{"SELECT customer_id, count(*) FROM orders GROUP BY ALL", true},
		{"SELECT o.Customer_ID FROM orders o", true},
		{"SELECT count(*) AS n FROM orders", false},
		{"SELECT customer_idx FROM orders", false},
		{"SELECT * FROM orders", true},
		{"SELECT o.* FROM orders o", true},
	} {
		require.Equal(t, tc.uses, usesColumn(tc.sql, "customer_id"), tc.sql)
	}
}
