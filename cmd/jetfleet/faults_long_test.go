//go:build long

package main_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestChaos is the long fault run (`make chaos`): 200,000 records, every
// worker step SIGKILLed several times and one of them over and over, the
// server SIGKILLed once, all at seeded random moments while records flow.
// JETFLEET_CHAOS_SEED, _RECORDS, _RATE and _SYNC change the run;
// JETFLEET_CHAOS_SUMMARY names a file for the summary table.
func TestChaos(t *testing.T) {
	t.Parallel()
	plan := faultPlan{
		Seed: envUint(t, "JETFLEET_CHAOS_SEED", uint64(time.Now().UnixNano()%1_000_000)),
		// Paced below what a loaded 2-core machine moves through three
		// process hops, so every kill lands on a step with work.
		Records: int(envUint(t, "JETFLEET_CHAOS_RECORDS", 200_000)),
		Rate:    float64(envUint(t, "JETFLEET_CHAOS_RATE", 1500)),
		Sync:    os.Getenv("JETFLEET_CHAOS_SYNC"),
		// 5% invalid, 3% duplicates: the duplicates come from a pool of
		// recent orders, some older than the server's 2-minute window, so
		// both de-duplication layers get work.
		InvalidShare: 0.05, DuplicateShare: 0.03,
		KillsPerStep: 3, RepeatKills: 6, ServerKills: 1, Bulk: true,
		AckWait: 5 * time.Second, Idle: 10 * time.Minute,
	}
	plan.RepeatStep = []string{"validate", "transform", "aggregate"}[plan.Seed%3]
	t.Logf("seed %d (JETFLEET_CHAOS_SEED=%d reruns this plan); %s is killed %d extra times", plan.Seed, plan.Seed, plan.RepeatStep, plan.RepeatKills)
	rep := runFaults(t, plan)
	require.Equal(t, plan.KillsPerStep+plan.RepeatKills, rep.Kills[plan.RepeatStep])
	require.Equal(t, 1, rep.Kills["server"])
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseUint(s, 10, 64)
	require.NoError(t, err, "%s=%q", name, s)
	return v
}
