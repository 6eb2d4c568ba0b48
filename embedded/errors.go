package embedded

import "errors"

var (
	// ErrInvalidConfig wraps every configuration error found before start.
	ErrInvalidConfig = errors.New("invalid embedded server config")
	// ErrNotReady is returned when the server did not accept connections in time.
	ErrNotReady = errors.New("embedded nats-server not ready")
)
