// Package pipeline is the pipeline file: datasets with their schema,
// validation rules, transforms and ingest settings, lookup tables, and
// marts. It decodes strictly: an unknown key, a value of the wrong kind or
// a dangling reference is an error that names the file, line and field and
// says what was expected.
//
// The package also holds the record model the steps share (a JSON object
// decoded with numbers kept as json.Number, see [DecodeRecord]) and the
// normalisations and timestamp formats the file can name, so validate and
// transform agree on what "trim, upper" or "rfc3339" mean.
//
// # Usage
//
//	spec, err := pipeline.Load("examples/shop/pipeline.yaml")
//	if err != nil { return err } // e.g. "pipeline.yaml:12:9: datasets.orders.validate[2].type: unknown type "numbr" (want one of string, number, ...)"
//	ds := spec.Dataset("orders")
//
// # Expressions
//
// Validation rules and derived fields use expr-lang/expr. Expressions are
// compiled once, when the file is parsed; they see the record's top-level
// fields as variables (numbers as float64, a missing field as nil).
package pipeline
