package aggregate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// ident quotes a DuckDB identifier.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal quotes a DuckDB string literal.
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = ident(n)
	}
	return strings.Join(q, ", ")
}

// openDuckDB opens path ("" for in-memory) with every connection in UTC,
// so casts of TIMESTAMPTZ to DATE are UTC dates whatever the host's zone.
func openDuckDB(path string, settings map[string]string) (*sql.DB, error) {
	connector, err := duckdb.NewConnector(path, func(execer driver.ExecerContext) error {
		_, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open duckdb %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	for k, v := range settings {
		if _, err := db.Exec(fmt.Sprintf("SET %s = %s", k, literal(v))); err != nil {
			db.Close()
			return nil, fmt.Errorf("duckdb setting %s=%s: %w", k, v, err)
		}
	}
	return db, nil
}

// execAll runs statements in order on conn.
func execAll(ctx context.Context, conn interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, stmts ...string,
) error {
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", firstLine(s), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// mkdirAll creates each directory with its parents.
func mkdirAll(dirs ...string) error {
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}
