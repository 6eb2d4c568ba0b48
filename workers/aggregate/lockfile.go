package aggregate

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// ErrLocked is returned when another owner holds a partition or the mart
// build.
var ErrLocked = errors.New("aggregate: held by another owner")

// tryLockFile takes an exclusive flock on path, or fails at once with
// ErrLocked; the returned func releases it. The lock is the OS's: it goes
// with the process, so a crashed owner never leaves it held. flock locks
// belong to the open file, so two owners in one process exclude each
// other too.
func tryLockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, err
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
