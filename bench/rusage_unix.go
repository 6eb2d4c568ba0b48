//go:build unix

package bench

import (
	"runtime"
	"syscall"
	"time"
)

// usage is the process's CPU time so far and its peak resident set.
// It covers the whole process: with the embedded server that includes
// nats-server, which is the honest cost of a one-process fleet.
func usage() (cpu time.Duration, peakRSS int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	peakRSS = int64(ru.Maxrss)
	if runtime.GOOS != "darwin" { // Linux and the BSDs report KiB, macOS bytes
		peakRSS *= 1024
	}
	return cpu, peakRSS
}
