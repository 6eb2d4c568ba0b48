package transform_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// TestContract judges the record after the transforms: a field a
// transform drops is no drift, one it leaves is; each mode does its own
// thing and the handler reports what it did.
func TestContract(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		contract, out, err string
	}{
		{"evolve", `{"id":"a","note":"x"}`, ""},
		{"discard_columns", `{"id":"a"}`, ""},
		{"freeze", "", "schema contract freeze: field(s) not in the schema of d: note"},
		{"discard_rows", "", "schema contract freeze: field(s) not in the schema of d: note"},
	} {
		t.Run(tc.contract, func(t *testing.T) {
			t.Parallel()
			spec, err := pipeline.Parse("t.yaml", []byte("name: t\ndatasets:\n  d:\n    key: id\n    contract: "+tc.contract+
				"\n    schema: [{name: id, type: VARCHAR}]\n    transform: [{drop: [debug]}]\n"))
			require.NoError(t, err)
			h, err := transform.New(spec.Dataset("d"), nil)
			require.NoError(t, err)
			require.Nil(t, h.ContractCounts(), "nothing judged yet")
			out, err := h.Transform([]byte(`{"id":"a","note":"x","debug":1}`))
			if tc.err != "" {
				require.ErrorIs(t, err, transform.ErrContract)
				require.EqualError(t, err, tc.err)
			} else {
				require.NoError(t, err)
				require.JSONEq(t, tc.out, string(out))
			}
			mode := tc.contract
			if mode == "discard_rows" {
				mode = "freeze"
			}
			require.Equal(t, &subjects.ContractCounts{Contract: mode, Fields: map[string]int64{"note": 1}}, h.ContractCounts())
		})
	}
}
