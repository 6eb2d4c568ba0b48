package query

import "errors"

var (
	// ErrNotAllowed is returned for a statement that is not a query.
	ErrNotAllowed = errors.New("query: statement not allowed")
	// ErrUnknownTable is returned by Profile for a name that is no view.
	ErrUnknownTable = errors.New("query: no such mart or dataset")
	// ErrOutside is returned for a query that reads a file outside the
	// marts and the lake (directly, through "..", a symlink or a glob), a
	// URL, or DuckDB's own directories.
	ErrOutside = errors.New("query: only files under the marts and the lake can be read")
	// ErrOutOfMemory is returned for a query that needs more memory than
	// the engine's limit.
	ErrOutOfMemory = errors.New("query: out of memory")
	// ErrUnsafeDataDir is returned by Open for a data dir whose marts or
	// lake reach outside themselves through a symlink.
	ErrUnsafeDataDir = errors.New("query: unsafe data dir")
	// ErrLockDown is returned by Open when DuckDB does not take the
	// lock-down as set.
	ErrLockDown = errors.New("query: lock-down did not take")
	// ErrBadFormat is returned by ParseFormat.
	ErrBadFormat = errors.New("query: unknown format")
)
