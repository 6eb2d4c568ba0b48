package backoff_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/internal/backoff"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	for attempt, want := range map[int]time.Duration{0: 100, 1: 100, 2: 200, 3: 400, 4: 800, 5: 1000, 60: 1000} {
		require.Equal(t, want*time.Millisecond, backoff.Delay(100*time.Millisecond, time.Second, attempt), "attempt %d", attempt)
	}
}

func TestWindow(t *testing.T) {
	t.Parallel()
	w := backoff.Window{Max: 2, Period: time.Minute}
	t0 := time.Now()
	require.True(t, w.Add(t0))
	require.True(t, w.Add(t0.Add(time.Second)))
	require.False(t, w.Add(t0.Add(2*time.Second)), "a third failure within the minute escalates")
	require.Equal(t, 3, w.Recent())
	require.True(t, w.Add(t0.Add(2*time.Minute)), "old failures leave the window")
	require.Equal(t, 1, w.Recent())
}
