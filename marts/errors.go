package marts

import "errors"

// ErrBadManifest is returned for a manifest or progress file that is not
// the JSON jetfleet writes.
var ErrBadManifest = errors.New("marts: bad manifest")
