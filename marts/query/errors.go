package query

import "errors"

var (
	// ErrNotAllowed is returned for a statement that is not a query.
	ErrNotAllowed = errors.New("query: statement not allowed")
	// ErrUnknownTable is returned by Profile for a name that is no view.
	ErrUnknownTable = errors.New("query: no such mart or dataset")
	// ErrBadFormat is returned by ParseFormat.
	ErrBadFormat = errors.New("query: unknown format")
)
