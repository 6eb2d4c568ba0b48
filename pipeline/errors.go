package pipeline

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidSpec is wrapped by every error about the content of a
	// pipeline file.
	ErrInvalidSpec = errors.New("invalid pipeline")
	// ErrNotObject is returned by [DecodeRecord] for JSON that is not an object.
	ErrNotObject = errors.New("record is not a JSON object")
	// ErrMalformed is returned by [DecodeRecord] for bytes that are not JSON.
	ErrMalformed = errors.New("record is not valid JSON")
	// ErrInvalidUTF8 is returned by [DecodeRecord] for bytes that are not UTF-8.
	ErrInvalidUTF8 = errors.New("record is not valid UTF-8")
	// ErrTooDeep is returned by [DecodeRecord] for values nested deeper
	// than [MaxRecordDepth].
	ErrTooDeep = errors.New("record is nested too deeply")
	// ErrNoSource is returned by [Dataset.FromSource] for a record that
	// matches none of the dataset's sources.
	ErrNoSource = errors.New("record matches no source")
)

// Pos is where something was written: file and line (1-based).
type Pos struct {
	File   string
	Line   int
	Column int
}

// String is "file:line:column", the form editors jump to.
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// FieldError is one problem in a pipeline file.
type FieldError struct {
	Pos   Pos
	Field string // dotted path, e.g. datasets.orders.validate[2].type
	Msg   string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.Pos, e.Field, e.Msg)
}

// Is makes every FieldError match ErrInvalidSpec.
func (e *FieldError) Is(target error) bool { return target == ErrInvalidSpec }
