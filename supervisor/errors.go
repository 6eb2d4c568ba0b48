package supervisor

import "errors"

var (
	// ErrInvalidConfig wraps every error of [Config] validation.
	ErrInvalidConfig = errors.New("invalid supervisor config")
	// ErrNotIdle is wrapped by [WaitIdle] when the fleet did not drain in
	// time; the message names what is still busy.
	ErrNotIdle = errors.New("fleet not idle")
	// ErrNotFound reports a dead letter sequence that is not in JF_DLQ.
	ErrNotFound = errors.New("dead letter not found")
	// ErrOriginalGone reports that the original of a truncated dead letter
	// has left its stream (expired or purged): only the truncated body is
	// left, and it is not replayed.
	ErrOriginalGone = errors.New("original no longer retained")
)
