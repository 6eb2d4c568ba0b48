package httpguard

import "errors"

var (
	// ErrInvalidConfig wraps every configuration error of [New].
	ErrInvalidConfig = errors.New("httpguard: invalid config")
	// ErrTokenRequired is returned by [New] for an address other than
	// loopback without a token.
	ErrTokenRequired = errors.New("httpguard: a token is required off loopback")
)
