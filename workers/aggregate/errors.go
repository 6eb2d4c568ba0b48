package aggregate

import "errors"

var (
	// ErrInvalidConfig wraps every configuration error.
	ErrInvalidConfig = errors.New("aggregate: invalid config")
	// ErrBadMart wraps a mart whose SQL does not work on its dataset; the
	// message names the mart.
	ErrBadMart = errors.New("aggregate: bad mart")
	// ErrNotStarted is returned by calls that need a started aggregator.
	ErrNotStarted = errors.New("aggregate: not started")
	// ErrDataDirUnwritable is returned for a batch the state could not
	// commit because the data dir refused the write (full, read-only, a
	// file size limit, an I/O error); the batch stays in the stream.
	ErrDataDirUnwritable = errors.New("aggregate: data dir refuses writes")
)
