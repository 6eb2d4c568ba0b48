package validate

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidRecord is wrapped by [*Error], the error of a record that
// failed one or more rules.
var ErrInvalidRecord = errors.New("validation failed")

// Failure is one failed rule.
type Failure struct {
	Rule string // the field, or the name of an expression rule
	Msg  string
}

func (f Failure) String() string { return f.Rule + ": " + f.Msg }

// Error lists every rule a record failed. It is permanent by nature (see
// message.PermanentError): a handler returns it as it is.
type Error struct {
	Failures []Failure
	one      [1]Failure // the first failure, without a slice of its own
}

func (e *Error) add(f Failure) {
	if e.Failures == nil {
		e.Failures = e.one[:0]
	}
	e.Failures = append(e.Failures, f)
}

// Permanent reports that a record failing its rules always will.
func (e *Error) Permanent() bool { return true }

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(ErrInvalidRecord.Error())
	if len(e.Failures) > 1 {
		b.WriteString(" (" + strconv.Itoa(len(e.Failures)) + " rules)")
	}
	b.WriteString(": ")
	for i, f := range e.Failures {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.String())
	}
	return b.String()
}

// Is makes an *Error match ErrInvalidRecord.
func (e *Error) Is(target error) bool { return target == ErrInvalidRecord }
