package validate_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/validate"
)

// TestHandleMapsSources: for a dataset with sources, the step forwards
// the record mapped to the dataset's shape, checked by the rules after
// the mapping; a record of no known shape is a permanent failure.
func TestHandleMapsSources(t *testing.T) {
	t.Parallel()
	spec, err := pipeline.Parse("p.yaml", []byte(`name: p
datasets:
  d:
    key: id
    schema: [{name: id, type: VARCHAR}, {name: qty, type: DOUBLE}, {name: src, type: VARCHAR}]
    sources:
      flat: {when: 'id != nil', fields: {id: id, qty: n}, set: {src: flat}}
      nested: {when: 'order != nil', fields: {id: order.id, qty: order.lines.qty}, set: {src: nested}}
    validate:
      - {field: id, required: true, type: string}
      - {field: qty, required: true, type: number, min: 1}
`))
	require.NoError(t, err)
	h, err := validate.New(spec.Dataset("d"))
	require.NoError(t, err)

	for in, want := range map[string]string{
		`{"id":"a","n":2,"x":true}`:                 `{"id":"a","qty":2,"src":"flat"}`,
		`{"order":{"id":"b","lines":{"qty":7.50}}}`: `{"id":"b","qty":7.50,"src":"nested"}`,
	} {
		out, err := h.Handle(t.Context(), workers.Record{Data: []byte(in)})
		require.NoError(t, err, in)
		require.Equal(t, []workers.Output{{Subject: subjects.Valid("d"), Data: []byte(want)}}, out, "digits kept as sent")
	}
	_, err = h.Handle(t.Context(), workers.Record{Data: []byte(`{"order":{"id":"c"}}`)})
	require.True(t, workers.IsPermanent(err))
	require.EqualError(t, err, "validation failed: qty: required, missing")
	_, err = h.Handle(t.Context(), workers.Record{Data: []byte(`{"sku":"x"}`)})
	require.ErrorIs(t, err, pipeline.ErrNoSource)
	require.True(t, workers.IsPermanent(err))
}
