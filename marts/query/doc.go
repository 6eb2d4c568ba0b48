// Package query runs read-only DuckDB SQL over a data directory's marts
// and lakes: `jetfleet query` and its HTTP endpoint.
//
// [Open] starts an in-memory DuckDB, locks it down and creates one view
// per mart (named after the mart) and per lake (named after the dataset,
// or <dataset>_lake when a mart has that name) over the Parquet files
// their manifests describe. Locked down, DuckDB reads only files whose
// real path is under the marts or lake directory (it resolves symlinks
// before it checks, so a link pointing out is refused: [ErrOutside]), has
// no temp directory (it would make that readable too, and a query over
// HTTP could fill a disk: a query past the memory limit fails with
// [ErrOutOfMemory]), loads no extension and cannot change its
// configuration; Open reads the settings back and refuses to serve if they
// did not take. Only SELECT, WITH, FROM, SUMMARIZE and DESCRIBE statements
// run, one per call.
//
// It reads only Parquet files and manifests, never the aggregator's state,
// so it works while the aggregator runs.
//
//	e, err := query.Open(ctx, query.Config{DataDir: ".jetfleet"})
//	defer e.Close()
//	res, err := e.Query(ctx, "SELECT * FROM daily_sales ORDER BY day")
//	err = res.Write(os.Stdout, query.FormatCSV)
package query
