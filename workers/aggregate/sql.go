package aggregate

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

func identList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = duckdb.Ident(n)
	}
	return strings.Join(q, ", ")
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
