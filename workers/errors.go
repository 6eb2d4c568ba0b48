package workers

import (
	"errors"
	"fmt"
	"time"
)

var (
	// ErrInvalidConfig wraps every error of [Config] validation.
	ErrInvalidConfig = errors.New("invalid worker config")
	// ErrTooManyRestarts stops a worker whose handler crashed more often
	// than its restart intensity allows.
	ErrTooManyRestarts = errors.New("handler crashed too often")
	// ErrStopped is the cause of a worker's context cancellation on Stop,
	// telling a requested stop apart from a failure.
	ErrStopped = errors.New("worker stopped")
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

// IsPermanent reports whether err was marked by [Permanent].
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
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

// PanicError is what a recovered handler panic becomes.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }
