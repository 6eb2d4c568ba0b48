package query

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/jetfleet/jetfleet/marts"
)

// Config configures an [Engine].
type Config struct {
	// DataDir holds marts/ and lake/. Required.
	DataDir string
	// MemoryLimit is DuckDB's memory_limit. Default 512MB.
	MemoryLimit string
}

// Table is a view a query can use.
type Table struct {
	Name     string
	Kind     string // marts.KindMart or marts.KindLake
	Manifest marts.Manifest
}

// Engine is a locked-down in-memory DuckDB with the views. It is safe for
// concurrent use; queries run one at a time.
type Engine struct {
	db     *sql.DB
	conn   *sql.Conn
	tables []Table
}

// Open builds the views from the manifests under cfg.DataDir and locks
// DuckDB down.
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("query: no data dir")
	}
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "512MB"
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	manifests, err := marts.ReadManifests(abs)
	if err != nil {
		return nil, err
	}
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		_, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query: open duckdb: %w", err)
	}
	e := &Engine{db: sql.OpenDB(connector)}
	e.db.SetMaxOpenConns(1)
	if e.conn, err = e.db.Conn(ctx); err != nil {
		e.db.Close()
		return nil, err
	}
	if err := e.setup(ctx, abs, cfg, manifests); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Engine) setup(ctx context.Context, dataDir string, cfg Config, manifests []marts.Manifest) error {
	if _, err := e.conn.ExecContext(ctx, "SET memory_limit = "+literal(cfg.MemoryLimit)); err != nil {
		return fmt.Errorf("query: memory limit %q: %w", cfg.MemoryLimit, err)
	}
	names := map[string]bool{}
	for _, m := range manifests {
		if m.Kind == marts.KindMart {
			names[strings.ToLower(m.Name)] = true
		}
	}
	for _, m := range manifests {
		name := m.Name
		if m.Kind == marts.KindLake && names[strings.ToLower(name)] {
			name += "_lake"
		}
		if names[strings.ToLower(name)] && m.Kind == marts.KindLake {
			continue
		}
		names[strings.ToLower(name)] = true
		if _, err := e.conn.ExecContext(ctx, viewSQL(name, m)); err != nil {
			return fmt.Errorf("query: view %s over %s: %w", name, m.Dir, err)
		}
		e.tables = append(e.tables, Table{Name: name, Kind: m.Kind, Manifest: m})
	}
	allowed := []string{
		literal(filepath.Join(dataDir, marts.MartsDir) + string(filepath.Separator)),
		literal(filepath.Join(dataDir, marts.LakeDir) + string(filepath.Separator)),
	}
	for _, s := range []string{
		"SET allowed_directories = [" + strings.Join(allowed, ", ") + "]",
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true",
	} {
		if _, err := e.conn.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("query: lock down: %s: %w", s, err)
		}
	}
	return nil
}

// viewSQL selects the manifest's columns in order from its Parquet files,
// or from nothing while it has none.
func viewSQL(name string, m marts.Manifest) string {
	cols := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = ident(c.Name)
	}
	if !hasParquet(m.Dir) {
		for i, c := range m.Columns {
			cols[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, ident(c.Name))
		}
		return fmt.Sprintf("CREATE VIEW %s AS SELECT %s WHERE false", ident(name), strings.Join(cols, ", "))
	}
	src := fmt.Sprintf("read_parquet(%s, hive_partitioning = false, union_by_name = true)", literal(m.Glob()))
	if len(m.PartitionBy) > 0 {
		types := map[string]string{}
		for _, c := range m.Columns {
			types[c.Name] = c.Type
		}
		hive := make([]string, len(m.PartitionBy))
		for i, p := range m.PartitionBy {
			hive[i] = fmt.Sprintf("%s: %s", literal(p), types[p])
		}
		src = fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types = {%s}, union_by_name = true)", literal(m.Glob()), strings.Join(hive, ", "))
	}
	return fmt.Sprintf("CREATE VIEW %s AS SELECT %s FROM %s", ident(name), strings.Join(cols, ", "), src)
}

func hasParquet(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(d.Name(), ".parquet") && !strings.HasPrefix(d.Name(), ".") {
			return found
		}
		return nil
	})
	return errors.Is(err, found)
}

// Tables lists the views, marts first.
func (e *Engine) Tables() []Table { return append([]Table(nil), e.tables...) }

// Close releases the engine.
func (e *Engine) Close() error {
	var errs []error
	if e.conn != nil {
		errs = append(errs, e.conn.Close())
	}
	errs = append(errs, e.db.Close())
	return errors.Join(errs...)
}

// allowedFirst are the statements a query may start with.
var allowedFirst = map[string]bool{"SELECT": true, "WITH": true, "FROM": true, "SUMMARIZE": true, "DESCRIBE": true}

// Query runs one read-only statement and returns its rows.
func (e *Engine) Query(ctx context.Context, q string) (*Result, error) {
	q = strings.TrimSpace(q)
	q = strings.TrimSpace(strings.TrimRight(q, "; \t\r\n"))
	first := strings.ToUpper(firstWord(q))
	if !allowedFirst[first] {
		if first == "" {
			return nil, fmt.Errorf("%w: empty query", ErrNotAllowed)
		}
		return nil, fmt.Errorf("%w: %s (only SELECT, WITH, FROM, SUMMARIZE and DESCRIBE)", ErrNotAllowed, first)
	}
	// DuckDB itself must see exactly one statement, and a query.
	err := e.conn.Raw(func(dc any) error {
		stmt, err := dc.(*duckdb.Conn).Prepare(q)
		if err != nil {
			if strings.Contains(err.Error(), "multiple statements") || strings.Contains(err.Error(), "context") {
				return fmt.Errorf("%w: one statement at a time", ErrNotAllowed)
			}
			return err
		}
		defer stmt.Close()
		typ, err := stmt.(*duckdb.Stmt).StatementType()
		if err != nil {
			return err
		}
		if typ != duckdb.STATEMENT_TYPE_SELECT {
			return fmt.Errorf("%w: not a query", ErrNotAllowed)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rows, err := e.conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return Collect(rows)
}

// Profile summarizes a mart or dataset: per column its type, min, max,
// approximate distinct count, null percentage and more (DuckDB SUMMARIZE).
func (e *Engine) Profile(ctx context.Context, name string) (*Result, error) {
	for _, t := range e.tables {
		if strings.EqualFold(t.Name, name) {
			return e.Query(ctx, "SUMMARIZE "+ident(t.Name))
		}
	}
	known := make([]string, len(e.tables))
	for i, t := range e.tables {
		known[i] = t.Name
	}
	return nil, fmt.Errorf("%w: %q (have: %s)", ErrUnknownTable, name, strings.Join(known, ", "))
}

func ident(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func literal(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// firstWord is the first keyword of a statement, after comments and
// opening parentheses.
func firstWord(q string) string {
	for {
		q = strings.TrimSpace(q)
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
			continue
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q, "*/")
			if i < 0 {
				return ""
			}
			q = q[i+2:]
			continue
		case strings.HasPrefix(q, "("):
			q = q[1:]
			continue
		}
		end := strings.IndexFunc(q, func(r rune) bool { return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') })
		if end < 0 {
			return q
		}
		return q[:end]
	}
}
