// Package transform is the transform step: it reads the valid records of a
// dataset from jf.valid.<dataset>, applies the dataset's transforms in
// order (normalise, parse timestamps and numbers, enrich from lookup
// tables, derive fields with expressions, mask PII, drop and rename
// fields) and publishes the result to jf.clean.<dataset>. A record a
// transform cannot apply to (a timestamp in no listed format, a lookup key
// with no row under missing: dlq, an expression that fails) is
// dead-lettered with the transform and the reason.
//
// # Lookup tables
//
// Lookup tables live in JetStream KV buckets (one per table, see
// subjects.LookupBucket), filled by [LoadTable] (`jetfleet lookup load`).
// [KVTables] holds every table the step needs in memory and watches the
// buckets, so an update reaches running workers within moments and a
// record costs no round trip. Start writes an inline table into its empty
// bucket; [KVTables.Wait] is the step's workers.Config.WaitFunc, so a step
// whose table is not loaded yet waits instead of dead-lettering every
// record. [StaticTables] serves the pipeline file's own rows, for tests,
// benchmarks and dry runs.
//
// # Usage
//
//	tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: js, Tables: transform.TablesOf(ds), Inline: spec.Lookups})
//	err = tables.Start(ctx)
//	defer tables.Stop(ctx)
//	h, err := transform.New(ds, tables)
//	// workers.Config{Step: subjects.StepTransform, NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
//	//	WaitFunc: func(ctx context.Context, f func(string)) error { return tables.Wait(ctx, transform.TablesOf(ds), f) }}
//
// A Handler is immutable and safe for concurrent use.
package transform
