package embeddedtest

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// FreePort returns a loopback TCP port that is free when picked, for a
// server that must come back on the same address (a restart) or whose
// address goes into a config file. Another process may take it before
// the test binds it; tests that need no fixed port use port -1.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return FreePorts(tb, 1)[0]
}

// FreePorts returns n distinct loopback TCP ports, free when picked:
// each stays bound until all are picked, so none is handed out twice.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(tb, err)
		defer l.Close() //nolint:gocritic // all held open until the last is picked, so the n ports differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreePortBlock finds a base port b with every b+offset free, for a
// layout that fixes ports relative to one another (scripts/local.sh puts
// routes at +2000 and monitoring at +4000 from the client ports).
func FreePortBlock(tb testing.TB, offsets ...int) int {
	tb.Helper()
	for range 50 {
		base := 20000 + rand.IntN(20000)
		if blockFree(base, offsets) {
			return base
		}
	}
	require.FailNow(tb, "no free port block", "offsets %v", offsets)
	return 0
}

func blockFree(base int, offsets []int) bool {
	for _, off := range offsets {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+off))
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}
