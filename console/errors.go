package console

import "errors"

// ErrInvalidConfig wraps every configuration error of [New].
var ErrInvalidConfig = errors.New("console: invalid config")
