package workers

import (
	"errors"
	"time"

	"github.com/jetfleet/jetfleet/workers/message"
)

var (
	// ErrInvalidConfig wraps every error of [Config] validation.
	ErrInvalidConfig = errors.New("invalid worker config")
	// ErrTooManyRestarts stops a worker whose handler crashed more often
	// than its restart intensity allows.
	ErrTooManyRestarts = errors.New("handler crashed too often")
)

// Permanent marks err as a property of the record (malformed, invalid):
// retrying cannot help, so the record is dead-lettered with err's text as
// the reason, and its message is terminated.
func Permanent(err error) error { return message.Permanent(err) }

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error { return message.Permanentf(format, args...) }

// IsPermanent reports whether err was marked by [Permanent], or is a
// [message.PermanentError] that says it is permanent.
func IsPermanent(err error) bool { return message.IsPermanent(err) }

// RetryAfter marks err as transient with a known delay (a rate limit, a
// dependency that said when it will be back): the message is redelivered
// after d.
func RetryAfter(d time.Duration, err error) error { return message.RetryAfter(d, err) }

// PanicError is what a recovered handler panic becomes.
type PanicError = message.PanicError
