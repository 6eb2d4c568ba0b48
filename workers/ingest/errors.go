package ingest

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownFormat is returned for a file whose format cannot be told
	// from its name, or that the dataset cannot read (fixed-width without
	// columns).
	ErrUnknownFormat = errors.New("unknown file format")
	// ErrBadFile is wrapped by every error about a file's content that
	// keeps the whole file from being ingested.
	ErrBadFile = errors.New("file cannot be ingested")
)

// ParseError is a structural problem in a file at a line: a CSV row with
// the wrong number of cells, a line over the length limit.
type ParseError struct {
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Is makes a ParseError match ErrBadFile.
func (e *ParseError) Is(target error) bool { return target == ErrBadFile }
