package message

import (
	"errors"
	"fmt"
	"time"
)

// permanentError marks a record that can never succeed.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a property of the record (malformed, invalid):
// retrying cannot help, so the record is dead-lettered with err's text as
// the reason, and its message is terminated.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// PermanentError is implemented by an error type that is permanent by
// nature (a record failing validation), so that a handler can return it
// without a Permanent wrapper, one allocation fewer per bad record.
type PermanentError interface {
	error
	Permanent() bool
}

// IsPermanent reports whether err was marked by [Permanent] or is a
// [PermanentError] saying so.
func IsPermanent(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return true
	}
	var pe PermanentError
	return errors.As(err, &pe) && pe.Permanent()
}

// retryAfterError asks for redelivery after a given delay.
type retryAfterError struct {
	delay time.Duration
	err   error
}

func (e *retryAfterError) Error() string { return e.err.Error() }
func (e *retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks err as transient with a known delay (a rate limit, a
// dependency that said when it will be back): the message is redelivered
// after d.
func RetryAfter(d time.Duration, err error) error {
	if err == nil {
		return nil
	}
	return &retryAfterError{delay: d, err: err}
}

// RetryDelay is the delay err asks for with [RetryAfter], if it does.
func RetryDelay(err error) (time.Duration, bool) {
	var ra *retryAfterError
	if errors.As(err, &ra) {
		return ra.delay, true
	}
	return 0, false
}

// PanicError is what a recovered handler panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }
