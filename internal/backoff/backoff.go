// Package backoff is the one exponential backoff and restart window of
// the fleet: the worker's retry and reconnect delays, its handler rebuilds
// and the supervisor tree's restarts all count with it.
package backoff

import (
	"context"
	"time"
)

// Delay is minD doubled per attempt after the first, capped at maxD.
// Attempts below 1 count as 1.
func Delay(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}

// Window counts failures in a sliding window: the restart intensity of
// an OTP supervisor. More than Max failures within Period escalate. The
// zero value allows nothing; it is not safe for concurrent use.
type Window struct {
	Max    int
	Period time.Duration
	times  []time.Time
}

// Add records a failure at now and reports whether it stays within the
// intensity (at most Max failures within Period).
func (w *Window) Add(now time.Time) bool {
	cut := 0
	for cut < len(w.times) && now.Sub(w.times[cut]) > w.Period {
		cut++
	}
	w.times = append(w.times[cut:], now)
	return len(w.times) <= w.Max
}

// Recent is how many failures the window holds: the attempt number of
// the backoff before the next restart.
func (w *Window) Recent() int { return len(w.times) }

// Sleep waits d or until ctx is done; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
