// Package duckdb is jetfleet's one door to DuckDB: opening a database
// whose connections run in UTC, quoting identifiers and literals for SQL
// text, telling a query from other statements, and the driver's value and
// error types. Only the aggregate step, the query engine (marts/query) and
// the bench baseline import it, and nothing else imports the driver
// (depguard holds both rules), so the cgo build and DuckDB's settings have
// one owner.
//
// # Usage
//
//	db, err := duckdb.Open("", map[string]string{"memory_limit": "256MB"})
//	if err != nil {
//		return err
//	}
//	defer db.Close()
//	_, err = db.ExecContext(ctx, "CREATE VIEW v AS SELECT * FROM read_parquet("+duckdb.Literal(path)+")")
package duckdb
