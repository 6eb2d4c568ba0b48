package aggregate

import (
	"testing"
)

func requireReadableByArrow(t *testing.T, dataDir string, distinct []order) {
	t.Helper()
}
