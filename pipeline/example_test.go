package pipeline_test

import (
	"errors"
	"fmt"

	"github.com/jetfleet/jetfleet/pipeline"
)

// A pipeline file parsed from memory: the datasets, their key and rules,
// as the validate step will apply them.
func Example_parse() {
	spec, err := pipeline.Parse("pipeline.yaml", []byte(`
name: shop
datasets:
  orders:
    key: order_id
    schema:
      - {name: order_id, type: VARCHAR}
      - {name: amount, type: DOUBLE}
    validate:
      - {field: order_id, required: true, type: string, min_length: 1}
      - {field: amount, required: true, type: number, min: 0}
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, name := range spec.DatasetNames() {
		ds := spec.Dataset(name)
		fmt.Printf("%s (key %s)\n", name, ds.Key)
		for _, r := range ds.Rules {
			fmt.Printf("  %s: %s, required %v (%s)\n", r.Field, r.Type, r.Required, r.Pos)
		}
	}
	// Output:
	// orders (key order_id)
	//   order_id: string, required true (pipeline.yaml:10:9)
	//   amount: number, required true (pipeline.yaml:11:9)
}

// Checking a pipeline file: every mistake is reported at once, each with
// its file, line and field and what was expected, and the whole is
// ErrInvalidSpec.
func Example_check() {
	_, err := pipeline.Parse("pipeline.yaml", []byte(`
name: shop
datasets:
  orders:
    schema:
      - {name: amount, type: DOUBLE}
    validate:
      - {field: amount, type: numbr}
`))
	fmt.Println(err)
	fmt.Println(errors.Is(err, pipeline.ErrInvalidSpec))
	// Output:
	// pipeline.yaml:8:31: datasets.orders.validate[0].type: got "numbr", want one of string, number, integer, bool, timestamp, object, array
	// pipeline.yaml:5:5: datasets.orders.key: missing (required)
	// true
}
