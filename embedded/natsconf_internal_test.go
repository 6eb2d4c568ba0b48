package embedded

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRootNATSConfIsTheBuiltIn: the root nats.conf is a link to the file
// built in here; a checkout that turned the link into a copy (core.symlinks
// off) must still say the same.
func TestRootNATSConfIsTheBuiltIn(t *testing.T) {
	t.Parallel()
	root, err := os.ReadFile(filepath.Join("..", "nats.conf"))
	require.NoError(t, err)
	require.Equal(t, natsConf, string(root), "../nats.conf and embedded/nats.conf differ: the root file is a link to embedded/nats.conf")
}
