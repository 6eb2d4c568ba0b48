package bench

import "errors"

// ErrInvalidConfig wraps every error in a harness [Config].
var ErrInvalidConfig = errors.New("invalid bench config")

// ErrNotFresh means the server or data dir already holds pipeline data,
// which would make the run's figures and its verification meaningless.
var ErrNotFresh = errors.New("bench needs a fresh server and data dir")
