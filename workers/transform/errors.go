package transform

import "errors"

// ErrTransform is wrapped by every error about a record that a transform
// could not apply to; the runtime dead-letters such records.
var ErrTransform = errors.New("transform failed")

// ErrNotStarted is returned by [KVTables] methods that need Start first.
var ErrNotStarted = errors.New("lookup tables not started")

// ErrContract is wrapped by the error of a record its dataset's schema
// contract (freeze) refuses: the runtime dead-letters it.
var ErrContract = errors.New("schema contract")
