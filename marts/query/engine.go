package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/jetfleet/jetfleet/internal/duckdb"
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
	db          *sql.DB
	conn        *sql.Conn
	tables      []Table
	memoryLimit string
}

// Open locks an in-memory DuckDB down to the marts and lake directories
// under cfg.DataDir, then builds the views from their manifests.
//
// Lock-down: no temp directory (DuckDB would add it, by default ".tmp" in
// the working directory, to the readable directories), external access off
// except for the real paths of marts/ and lake/, no extension loading, and
// the configuration locked; Open then reads the settings back and refuses
// to serve if DuckDB allows anything else. DuckDB resolves symlinks before
// it checks a path, so a link under marts/ pointing outside is refused when
// it is read (and a mart directory that is a link is no view: manifests
// are read from directories only). Open refuses a marts/ or lake/ that
// resolves to a directory holding the data dir (marts -> .., or /).
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("query: no data dir")
	}
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "512MB"
	}
	roots, err := resolveRoots(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	manifests, err := marts.ReadManifests(roots.dataDir)
	if err != nil {
		return nil, err
	}
	db, err := duckdb.Open("", nil)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	e := &Engine{db: db, memoryLimit: cfg.MemoryLimit}
	e.db.SetMaxOpenConns(1)
	if e.conn, err = e.db.Conn(ctx); err != nil {
		e.db.Close()
		return nil, err
	}
	// Locked before the views exist, so that nothing read from the data
	// dir (manifests, Parquet metadata) runs with more access than a query.
	if err := e.lockDown(ctx, cfg, roots); err != nil {
		e.Close()
		return nil, err
	}
	if err := e.createViews(ctx, manifests); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// roots are the real paths a query may read.
type roots struct {
	dataDir, marts, lake string
}

// resolveRoots resolves the data dir, marts/ and lake/ to real paths:
// those are what DuckDB compares resolved file paths with. A directory that
// does not exist yet keeps its path.
func resolveRoots(dataDir string) (roots, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return roots{}, err
	}
	real := func(p string) (string, error) {
		r, err := filepath.EvalSymlinks(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		return r, err
	}
	var r roots
	if r.dataDir, err = real(abs); err != nil {
		return roots{}, fmt.Errorf("query: data dir: %w", err)
	}
	for _, d := range []struct {
		dst *string
		sub string
	}{{&r.marts, marts.MartsDir}, {&r.lake, marts.LakeDir}} {
		if *d.dst, err = real(filepath.Join(r.dataDir, d.sub)); err != nil {
			return roots{}, fmt.Errorf("query: %w", err)
		}
		// marts -> .. (or /) would open the state and the NATS store.
		if within(r.dataDir, *d.dst) {
			return roots{}, fmt.Errorf("%w: %s resolves to %s, which holds the data dir itself", ErrUnsafeDataDir, filepath.Join(r.dataDir, d.sub), *d.dst)
		}
	}
	return r, nil
}

// within reports whether path is dir or below it (both clean and absolute).
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// lockDown confines DuckDB to the roots and checks that it took.
func (e *Engine) lockDown(ctx context.Context, cfg Config, r roots) error {
	allowed := []string{r.marts + string(filepath.Separator), r.lake + string(filepath.Separator)}
	lits := []string{duckdb.Literal(allowed[0]), duckdb.Literal(allowed[1])}
	for _, s := range []string{
		"SET memory_limit = " + duckdb.Literal(cfg.MemoryLimit),
		// No spilling: the only directories a query reaches are the marts
		// and the lake, and a query over HTTP cannot fill a disk. A query
		// that needs more than the memory limit fails and says so.
		"SET temp_directory = ''",
		"SET allowed_directories = [" + strings.Join(lits, ", ") + "]",
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true",
	} {
		if _, err := e.conn.ExecContext(ctx, s); err != nil {
			if strings.HasPrefix(s, "SET memory_limit") {
				return fmt.Errorf("query: memory limit %q: %w", cfg.MemoryLimit, err)
			}
			return fmt.Errorf("query: lock down: %s: %w", s, err)
		}
	}
	// DuckDB adds directories of its own (its temp directory) to the list;
	// a version that adds another must not serve.
	var dirs []any
	var temp string
	var external, locked bool
	err := e.conn.QueryRowContext(ctx, `SELECT current_setting('allowed_directories'), current_setting('temp_directory'),
		current_setting('enable_external_access'), current_setting('lock_configuration')`).Scan(&dirs, &temp, &external, &locked)
	if err != nil {
		return fmt.Errorf("query: lock down: read settings: %w", err)
	}
	got := make([]string, len(dirs))
	for i, d := range dirs {
		got[i] = fmt.Sprint(d)
	}
	slices.Sort(got)
	slices.Sort(allowed)
	if !slices.Equal(got, slices.Compact(allowed)) || temp != "" || external || !locked {
		return fmt.Errorf("%w: DuckDB allows %v (temp directory %q, external access %t, locked %t), want only %v",
			ErrLockDown, got, temp, external, locked, allowed)
	}
	return nil
}

func (e *Engine) createViews(ctx context.Context, manifests []marts.Manifest) error {
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
	return nil
}

// viewSQL selects the manifest's columns in order from its Parquet files,
// or from nothing while it has none.
func viewSQL(name string, m marts.Manifest) string {
	cols := make([]string, len(m.Columns))
	for i, c := range m.Columns {
		cols[i] = duckdb.Ident(c.Name)
	}
	if !hasParquet(m.Dir) {
		for i, c := range m.Columns {
			cols[i] = fmt.Sprintf("CAST(NULL AS %s) AS %s", c.Type, duckdb.Ident(c.Name))
		}
		return fmt.Sprintf("CREATE VIEW %s AS SELECT %s WHERE false", duckdb.Ident(name), strings.Join(cols, ", "))
	}
	src := fmt.Sprintf("read_parquet(%s, hive_partitioning = false, union_by_name = true)", duckdb.Literal(m.Glob()))
	if len(m.PartitionBy) > 0 {
		types := map[string]string{}
		for _, c := range m.Columns {
			types[c.Name] = c.Type
		}
		hive := make([]string, len(m.PartitionBy))
		for i, p := range m.PartitionBy {
			hive[i] = fmt.Sprintf("%s: %s", duckdb.Literal(p), types[p])
		}
		src = fmt.Sprintf("read_parquet(%s, hive_partitioning = true, hive_types = {%s}, union_by_name = true)", duckdb.Literal(m.Glob()), strings.Join(hive, ", "))
	}
	return fmt.Sprintf("CREATE VIEW %s AS SELECT %s FROM %s", duckdb.Ident(name), strings.Join(cols, ", "), src)
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
	first := strings.ToUpper(duckdb.FirstWord(q))
	if !allowedFirst[first] {
		if first == "" {
			return nil, fmt.Errorf("%w: empty query", ErrNotAllowed)
		}
		return nil, fmt.Errorf("%w: %s (only SELECT, WITH, FROM, SUMMARIZE and DESCRIBE)", ErrNotAllowed, first)
	}
	res, err := e.query(ctx, q)
	if err != nil {
		return nil, e.explain(ctx, err)
	}
	return res, nil
}

func (e *Engine) query(ctx context.Context, q string) (*Result, error) {
	// DuckDB itself must see exactly one statement, and a query.
	isSelect, err := duckdb.IsSelect(e.conn, q)
	if errors.Is(err, duckdb.ErrNotOneStatement) {
		return nil, fmt.Errorf("%w: one statement at a time", ErrNotAllowed)
	}
	if err != nil {
		return nil, err
	}
	if !isSelect {
		return nil, fmt.Errorf("%w: not a query", ErrNotAllowed)
	}
	rows, err := e.conn.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return Collect(rows)
}

// explain turns DuckDB's refusals into errors that say what the query
// engine allows; DuckDB's own advice (set a temp directory, raise the
// limit with SET) cannot be followed here.
func (e *Engine) explain(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("query stopped: %w", context.Cause(ctx))
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return err
	}
	switch de.Type {
	case duckdb.ErrorTypePermission:
		return fmt.Errorf("%w: %s", ErrOutside, firstLine(de.Msg))
	case duckdb.ErrorTypeOutOfMemory:
		return fmt.Errorf("%w: the query needs more than the memory limit %s (the query engine does not spill to disk; raise --memory-limit or narrow the query): %s",
			ErrOutOfMemory, e.memoryLimit, firstLine(de.Msg))
	}
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// Profile summarizes a mart or dataset: per column its type, min, max,
// approximate distinct count, null percentage and more (DuckDB SUMMARIZE).
func (e *Engine) Profile(ctx context.Context, name string) (*Result, error) {
	for _, t := range e.tables {
		if strings.EqualFold(t.Name, name) {
			return e.Query(ctx, "SUMMARIZE "+duckdb.Ident(t.Name))
		}
	}
	known := make([]string, len(e.tables))
	for i, t := range e.tables {
		known[i] = t.Name
	}
	return nil, fmt.Errorf("%w: %q (have: %s)", ErrUnknownTable, name, strings.Join(known, ", "))
}
