package duckdb

import (
	"database/sql"
	"errors"
	"strings"

	duckdbgo "github.com/duckdb/duckdb-go/v2"
)

// ErrNotOneStatement is IsSelect's answer for text that holds several
// statements (DuckDB prepares one at a time).
var ErrNotOneStatement = errors.New("not one statement")

// IsSelect prepares q on conn without running it and reports whether
// DuckDB sees it as a SELECT (which includes WITH, FROM-first, SUMMARIZE
// and DESCRIBE). A q of several statements is ErrNotOneStatement; other
// errors are DuckDB's (a syntax error, a missing table).
func IsSelect(conn *sql.Conn, q string) (bool, error) {
	var isSelect bool
	err := conn.Raw(func(dc any) error {
		stmt, err := dc.(*duckdbgo.Conn).Prepare(q)
		if err != nil {
			// The driver's own refusals are plain errors: DuckDB's
			// "multiple statements", or the driver's missing prepare
			// context when it extracted more than one.
			if strings.Contains(err.Error(), "multiple statements") || strings.Contains(err.Error(), "context") {
				return ErrNotOneStatement
			}
			return err
		}
		defer stmt.Close()
		typ, err := stmt.(*duckdbgo.Stmt).StatementType()
		if err != nil {
			return err
		}
		isSelect = typ == duckdbgo.STATEMENT_TYPE_SELECT
		return nil
	})
	return isSelect, err
}
