package aggregate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/jetfleet/jetfleet/internal/duckdb"
)

// EngineConfig configures an [Engine].
type EngineConfig struct {
	// MemoryLimit is DuckDB's memory_limit ("512MB", "2GB"). Default 1GB.
	MemoryLimit string
	// Threads is DuckDB's thread count. Default: DuckDB's (all cores).
	Threads int
	// TempDir is where DuckDB spills beyond the limit: a directory of this
	// process's own, created and removed by the engine. Required.
	TempDir string
}

// Engine is the aggregate step's DuckDB: one in-memory database per
// aggregator process, shared by its [Intake] (lake flushes) and its
// [MartBuilder]. It holds no state of its own that a restart needs: the
// journals, the lake and the builder's checkpoint do. Safe for concurrent
// use.
type Engine struct {
	cfg        EngineConfig
	db         *sql.DB
	unlockFunc func()
}

// OpenEngine opens the database.
func OpenEngine(cfg EngineConfig) (*Engine, error) {
	if cfg.MemoryLimit == "" {
		cfg.MemoryLimit = "1GB"
	}
	if !isSafeSetting(cfg.MemoryLimit) {
		return nil, fmt.Errorf("%w: memory limit %q", ErrInvalidConfig, cfg.MemoryLimit)
	}
	if cfg.TempDir == "" {
		return nil, fmt.Errorf("%w: engine without a temp dir", ErrInvalidConfig)
	}
	if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
		return nil, err
	}
	// Held while the engine runs, so RemoveStaleTempDirs knows it is in use.
	unlock, err := tryLockFile(filepath.Join(cfg.TempDir, ".lock"))
	if err != nil {
		return nil, err
	}
	settings := map[string]string{
		"memory_limit":   cfg.MemoryLimit,
		"temp_directory": cfg.TempDir,
		// Lake and mart files are written in no particular row order;
		// keeping it costs memory and threads.
		"preserve_insertion_order": "false",
	}
	if cfg.Threads > 0 {
		settings["threads"] = strconv.Itoa(cfg.Threads)
	}
	db, err := duckdb.Open("", settings)
	if err != nil {
		unlock()
		return nil, err
	}
	return &Engine{cfg: cfg, db: db, unlockFunc: unlock}, nil
}

// RemoveStaleTempDirs removes the temp dirs in parent whose names start
// with prefix and that no engine holds: what engines of killed processes
// left behind.
func RemoveStaleTempDirs(parent, prefix string) error {
	dirs, err := filepath.Glob(filepath.Join(parent, prefix+"*"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		unlock, err := tryLockFile(filepath.Join(d, ".lock"))
		if err != nil {
			continue // in use, or not ours
		}
		errs = append(errs, os.RemoveAll(d))
		unlock()
	}
	return errors.Join(errs...)
}

// conn is a connection of its own: temp objects are per connection.
func (e *Engine) conn(ctx context.Context) (*sql.Conn, error) { return e.db.Conn(ctx) }

// Memory is what DuckDB accounts for (buffers, hash tables, tables of
// partial aggregates: duckdb_memory()).
func (e *Engine) Memory(ctx context.Context) (int64, error) {
	var n int64
	err := e.db.QueryRowContext(ctx, `SELECT CAST(coalesce(sum(memory_usage_bytes), 0) AS BIGINT) FROM duckdb_memory()`).Scan(&n)
	return n, err
}

// Close closes the database and removes its temp dir.
func (e *Engine) Close() error {
	err := e.db.Close()
	if rerr := os.RemoveAll(e.cfg.TempDir); err == nil {
		err = rerr
	}
	e.unlockFunc()
	return err
}
