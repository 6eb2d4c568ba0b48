//go:build unix

package bench

import (
	"os"
	"runtime"
	"strconv"
	"strings"
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

// currentRSS is the process's resident set now, and the part of it that
// maps files (the binary's pages, mostly): /proc/self/statm where there is
// one (Linux), else the peak so far and 0.
func currentRSS() (rss, file int64) {
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 2 {
			resident, err1 := strconv.ParseInt(f[1], 10, 64)
			shared, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				page := int64(os.Getpagesize())
				return resident * page, shared * page
			}
		}
	}
	_, peak := usage()
	return peak, 0
}
