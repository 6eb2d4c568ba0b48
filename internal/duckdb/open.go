package duckdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	duckdbgo "github.com/duckdb/duckdb-go/v2"
)

// Open opens path ("" for in-memory) with every connection in UTC, so a
// TIMESTAMPTZ cast to DATE is the same UTC day in the aggregator, the
// query engine and the bench baseline whatever the host's zone. Each of
// settings (DuckDB's global options: memory_limit, threads, ...) is set
// before Open returns.
func Open(path string, settings map[string]string) (*sql.DB, error) {
	connector, err := duckdbgo.NewConnector(path, func(execer driver.ExecerContext) error {
		_, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		if path == "" {
			return nil, fmt.Errorf("open duckdb: %w", err)
		}
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	for k, v := range settings {
		if _, err := db.Exec(fmt.Sprintf("SET %s = %s", k, Literal(v))); err != nil {
			db.Close()
			return nil, fmt.Errorf("duckdb setting %s=%s: %w", k, v, err)
		}
	}
	return db, nil
}
