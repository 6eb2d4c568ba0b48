//go:build !linux

package cputime

import (
	"syscall"
	"time"
)

// Thread is the CPU time of the whole process where the thread's is not
// available: on an idle machine near enough for one benchmark goroutine.
func Thread() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
