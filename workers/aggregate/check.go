package aggregate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

// CheckMarts checks mart definitions against their datasets without
// running anything: each mart's SQL must prepare over an empty table
// named after its dataset, with the dataset's schema, and its partition
// columns must be columns of its SELECT. Errors wrap ErrBadMart (or
// ErrInvalidConfig for a bad dataset) and name the mart.
func CheckMarts(datasets []DatasetConfig, marts []Mart) error {
	ctx := context.Background()
	db, err := duckdb.Open("", map[string]string{"memory_limit": "256MB", "enable_external_access": "false"})
	if err != nil {
		return err
	}
	defer db.Close()
	byName := map[string]bool{}
	for _, ds := range datasets {
		if err := validateDataset(ds); err != nil {
			return err
		}
		cols := make([]string, len(ds.Schema))
		for i, c := range ds.Schema {
			cols[i] = duckdb.Ident(c.Name) + " " + c.Type
		}
		if _, err := db.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", duckdb.Ident(ds.Name), strings.Join(cols, ", "))); err != nil {
			return fmt.Errorf("%w: dataset %s: %w", ErrInvalidConfig, ds.Name, err)
		}
		byName[ds.Name] = true
	}
	seen := map[string]bool{}
	for _, m := range marts {
		if seen[m.Name] {
			return fmt.Errorf("%w: mart %s is defined twice", ErrBadMart, m.Name)
		}
		seen[m.Name] = true
		if !byName[m.Dataset] {
			return fmt.Errorf("%w: mart %s: unknown dataset %q", ErrBadMart, m.Name, m.Dataset)
		}
		q := strings.TrimRight(strings.TrimSpace(m.SQL), ";")
		if q == "" {
			return fmt.Errorf("%w: mart %s: no SQL", ErrBadMart, m.Name)
		}
		if !singleStatement(q) {
			return fmt.Errorf("%w: mart %s: SQL must be one SELECT statement", ErrBadMart, m.Name)
		}
		if first := strings.ToUpper(duckdb.FirstWord(q)); first != "SELECT" && first != "WITH" && first != "FROM" {
			return fmt.Errorf("%w: mart %s: SQL must be a SELECT, not %s", ErrBadMart, m.Name, first)
		}
		cols, err := describe(ctx, db, q)
		if err != nil {
			return fmt.Errorf("%w: mart %s: %w", ErrBadMart, m.Name, err)
		}
		if err := checkPartitionColumns(m.Name, cols, m.PartitionBy); err != nil {
			return err
		}
	}
	return nil
}

// singleStatement reports whether every ';' of q is inside a string
// literal, quoted identifier or comment.
func singleStatement(q string) bool {
	inS, inD := false, false
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case inS:
			inS = c != '\''
		case inD:
			inD = c != '"'
		case c == '\'':
			inS = true
		case c == '"':
			inD = true
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == ';':
			return false
		}
	}
	return true
}

// MartUpkeep says how the aggregate step keeps a mart: incrementally
// (partial aggregates merged with each flush's rows), or recomputed from
// the lake for the partitions new rows touch, and why.
type MartUpkeep struct {
	Mart        string
	Incremental bool
	Partitioned bool
	// Reason says why a mart is recomputed ("median is not
	// decomposable"); empty when incremental.
	Reason string
}

// MartUpkeeps plans every mart as the builder would. The marts must pass
// CheckMarts.
func MartUpkeeps(datasets []DatasetConfig, ms []Mart) ([]MartUpkeep, error) {
	ctx := context.Background()
	db, err := duckdb.Open("", map[string]string{"memory_limit": "256MB", "enable_external_access": "false"})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	schemas := map[string][]incrColumn{}
	for _, ds := range datasets {
		for _, c := range ds.Schema {
			schemas[ds.Name] = append(schemas[ds.Name], incrColumn{Name: c.Name, Type: c.Type})
		}
	}
	out := make([]MartUpkeep, 0, len(ms))
	for _, m := range ms {
		plan, reason, err := incrPlanMart(ctx, conn, m.Dataset, schemas[m.Dataset], strings.TrimRight(strings.TrimSpace(m.SQL), ";"), m.PartitionBy)
		if err != nil {
			return nil, fmt.Errorf("%w: mart %s: %w", ErrBadMart, m.Name, err)
		}
		out = append(out, MartUpkeep{Mart: m.Name, Incremental: plan != nil, Partitioned: len(m.PartitionBy) > 0, Reason: reason})
	}
	return out, nil
}
