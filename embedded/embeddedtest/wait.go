package embeddedtest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// PollEvery is how often [WaitFor] checks its condition: often enough that
// a test waits little past the moment the condition holds, seldom enough
// that the polling does not compete with the code under test.
const PollEvery = 20 * time.Millisecond

// Timeout scales a test's wait for slow machines: by JETFLEET_TEST_SCALE
// when it is set (JETFLEET_TEST_SCALE=3 triples every wait), else 3x when
// CI is set, as CI runners share their cores. A timeout only bounds how
// long a broken test hangs, so a generous one costs nothing when the
// code works.
func Timeout(d time.Duration) time.Duration {
	if f, err := strconv.ParseFloat(os.Getenv("JETFLEET_TEST_SCALE"), 64); err == nil && f > 0 {
		return time.Duration(float64(d) * f)
	}
	if ci := os.Getenv("CI"); ci != "" && ci != "false" && ci != "0" {
		return 3 * d
	}
	return d
}

// CheckFor calls f every `every` until it returns nil. It fails the test
// with f's last error when [Timeout](total) has passed, or when the test
// ends while it waits. Return an error that says what is missing (the
// count so far, the state seen): it is the failure message.
func CheckFor(tb testing.TB, total, every time.Duration, f func() error) {
	tb.Helper()
	total = Timeout(total)
	deadline := time.Now().Add(total)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			require.FailNow(tb, fmt.Sprintf("timed out after %s: %v", total, err))
		}
		select {
		case <-tb.Context().Done():
			require.FailNow(tb, fmt.Sprintf("test ended while waiting: %v", err))
		case <-tick.C:
		}
	}
}

// WaitFor polls cond every [PollEvery] until it holds, failing the test
// after [Timeout](total) with "timed out after ...: waiting for what".
func WaitFor(tb testing.TB, total time.Duration, what string, cond func() bool) {
	tb.Helper()
	errNotYet := errors.New("waiting for " + what)
	CheckFor(tb, total, PollEvery, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// WaitOrTimeout returns the next value received on ch (or the zero value
// when ch is closed), failing the test if none comes within
// [Timeout](total).
func WaitOrTimeout[T any](tb testing.TB, ch <-chan T, total time.Duration, what string) T {
	tb.Helper()
	total = Timeout(total)
	select {
	case v := <-ch:
		return v
	case <-time.After(total):
		require.FailNow(tb, "timed out after "+total.String()+" waiting for "+what)
	case <-tb.Context().Done():
		require.FailNow(tb, "test ended while waiting for "+what)
	}
	var zero T
	return zero
}
