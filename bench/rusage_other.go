//go:build !unix

package bench

import "time"

// usage is not measured where getrusage is missing; the figures read 0.
func usage() (cpu time.Duration, peakRSS int64) { return 0, 0 }

// currentRSS is not measured where getrusage is missing.
func currentRSS() (rss, file int64) { return 0, 0 }
