package aggregate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// MartQuery is a query over marts, such as an alert rule's: it sees each
// mart as a table of its output columns, and each dataset's lake, as
// `jetfleet query` does.
type MartQuery struct {
	Name string
	SQL  string
}

// CheckMartQueries prepares each query against empty tables shaped like
// the marts (whose SQL must be good: run CheckMarts first) and lakes. It
// returns one error per bad query, in order, nil entries for good ones.
func CheckMartQueries(datasets []DatasetConfig, ms []Mart, queries []MartQuery) ([]error, error) {
	ctx := context.Background()
	src, err := duckdb.Open("", map[string]string{"memory_limit": "256MB", "enable_external_access": "false"})
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dst, err := duckdb.Open("", map[string]string{"memory_limit": "256MB", "enable_external_access": "false"})
	if err != nil {
		return nil, err
	}
	defer dst.Close()
	names := map[string]bool{}
	for _, ds := range datasets {
		cols := make([]string, len(ds.Schema))
		for i, c := range ds.Schema {
			cols[i] = duckdb.Ident(c.Name) + " " + c.Type
		}
		if _, err := src.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", duckdb.Ident(ds.Name), strings.Join(cols, ", "))); err != nil {
			return nil, fmt.Errorf("%w: dataset %s: %w", ErrInvalidConfig, ds.Name, err)
		}
	}
	table := func(name string, cols []marts.Column) error {
		defs := make([]string, len(cols))
		for i, c := range cols {
			defs[i] = duckdb.Ident(c.Name) + " " + c.Type
		}
		names[strings.ToLower(name)] = true
		_, err := dst.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", duckdb.Ident(name), strings.Join(defs, ", ")))
		return err
	}
	for _, m := range ms {
		cols, err := describe(ctx, src, strings.TrimRight(strings.TrimSpace(m.SQL), ";"))
		if err != nil {
			return nil, fmt.Errorf("%w: mart %s: %w", ErrBadMart, m.Name, err)
		}
		if err := table(m.Name, cols); err != nil {
			return nil, fmt.Errorf("%w: mart %s: %w", ErrBadMart, m.Name, err)
		}
	}
	for _, ds := range datasets {
		cols := make([]marts.Column, 0, len(ds.Schema)+1)
		for _, c := range ds.Schema {
			cols = append(cols, marts.Column{Name: c.Name, Type: c.Type})
		}
		cols = append(cols, marts.Column{Name: lakeDateColumn(ds), Type: "DATE"}, marts.Column{Name: lakeMonthColumn(ds), Type: "VARCHAR"})
		name := ds.Name
		if names[strings.ToLower(name)] {
			name += "_lake"
		}
		if names[strings.ToLower(name)] {
			continue
		}
		if err := table(name, cols); err != nil {
			return nil, fmt.Errorf("%w: lake %s: %w", ErrInvalidConfig, ds.Name, err)
		}
	}
	errs := make([]error, len(queries))
	for i, q := range queries {
		sql := strings.TrimRight(strings.TrimSpace(q.SQL), ";")
		switch first := strings.ToUpper(duckdb.FirstWord(sql)); {
		case !singleStatement(sql):
			errs[i] = fmt.Errorf("SQL must be one SELECT statement")
		case first != "SELECT" && first != "WITH" && first != "FROM":
			errs[i] = fmt.Errorf("SQL must be a SELECT, not %s", first)
		default:
			if _, err := describe(ctx, dst, sql); err != nil {
				errs[i] = err
			}
		}
	}
	return errs, nil
}
