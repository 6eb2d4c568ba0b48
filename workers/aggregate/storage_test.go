package aggregate

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIsStorageErr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("flush: %w", &fs.PathError{Op: "write", Path: "/d/x", Err: syscall.EFBIG}), true},
		{&fs.PathError{Op: "open", Path: "/d/x", Err: syscall.EROFS}, true},
		{errors.New(`TransactionContext Error: Failed to commit: Could not write file "/d/state/orders.duckdb.wal": No space left on device`), true},
		{errors.New(`IO Error: Could not write file "x": File too large`), true},
		{errors.New(`Conversion Error: Could not convert string 'x' to INT32`), false},
		{errors.New("context deadline exceeded"), false},
	} {
		require.Equal(t, tc.want, isStorageErr(tc.err), "%v", tc.err)
	}
}
