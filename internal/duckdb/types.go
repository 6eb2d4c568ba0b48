package duckdb

import duckdbgo "github.com/duckdb/duckdb-go/v2"

// The driver's types that reach callers: values scanned from a result,
// and the error whose Type tells a refusal (permission, memory) apart.
// Aliases, so that values and errors from database/sql match them.
type (
	Decimal   = duckdbgo.Decimal
	UUID      = duckdbgo.UUID
	Map       = duckdbgo.Map
	Error     = duckdbgo.Error
	ErrorType = duckdbgo.ErrorType
)

// The error types the query engine explains.
const (
	ErrorTypePermission  = duckdbgo.ErrorTypePermission
	ErrorTypeOutOfMemory = duckdbgo.ErrorTypeOutOfMemory
)
