// Package query runs read-only DuckDB SQL over a data directory's marts
// and lakes: `jetfleet query` and its HTTP endpoint.
//
// [Open] starts an in-memory DuckDB, creates one view per mart (named
// after the mart) and per lake (named after the dataset, or
// <dataset>_lake when a mart has that name) over the Parquet files their
// manifests describe, and then locks DuckDB down: external access is off
// except for the marts and lake directories, and the configuration is
// locked, so a query cannot read or write other files. Only SELECT, WITH,
// FROM, SUMMARIZE and DESCRIBE statements run, one per call.
//
// It reads only Parquet files and manifests, never the aggregator's state,
// so it works while the aggregator runs.
//
//	e, err := query.Open(ctx, query.Config{DataDir: ".jetfleet"})
//	defer e.Close()
//	res, err := e.Query(ctx, "SELECT * FROM daily_sales ORDER BY day")
//	err = res.Write(os.Stdout, query.FormatCSV)
package query
