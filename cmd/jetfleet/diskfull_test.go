//go:build linux

package main_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestAggregatorWaitsOutAFullDataDir makes the aggregator's writes fail
// the way a full disk does (we run as root, so a read-only directory would
// not stop us: a file size limit of 0 on the aggregator process makes every
// write that grows a file fail with EFBIG), then lifts it. While writes
// fail the aggregator acks nothing, says so in its log and heartbeat, and
// burns no deliveries; afterwards it catches up and the lake is exact.
func TestAggregatorWaitsOutAFullDataDir(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	nc, js := embeddedtest.Connect(t, srv.ClientURL())
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	dataDir := t.TempDir()

	// --max-deliver 3: an outage that cost a delivery per retry would
	// dead-letter the records within seconds.
	agg := start(t, []string{"NATS_URL=" + srv.ClientURL()}, "worker", "--log-format", "json", "--data-dir", dataDir,
		"--max-deliver", "3", "--ack-wait", "10s", "aggregate")

	beats := make(chan subjects.Beat, 64)
	sub, err := nc.Subscribe(subjects.Heartbeat("aggregate", "*"), func(m *nats.Msg) {
		var b subjects.Beat
		if json.Unmarshal(m.Data, &b) == nil {
			select {
			case beats <- b:
			default:
			}
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	var wantUSD float64
	publish := func(from, n int) {
		for i := from; i < from+n; i++ {
			usd := float64(i%50) + 0.25
			wantUSD += usd
			rec := fmt.Sprintf(`{"order_id":"d-%d","customer_id":"c-%d","amount":%g,"currency":"USD","amount_usd":%g,"country":"US","ts":"2026-10-0%dT10:00:00Z"}`, i, i%20, usd, usd, 1+i%3)
			// With its key token, as transform publishes it: stream
			// sequences then count records one to one.
			m := nats.NewMsg(subjects.CleanKey("orders", subjects.KeyToken(fmt.Sprintf("d-%d", i))))
			m.Header.Set(nats.MsgIdHdr, fmt.Sprintf("d-%d", i))
			m.Data = []byte(rec)
			_, err := js.PublishMsg(t.Context(), m)
			require.NoError(t, err)
		}
	}
	// The aggregator's partition consumers: acked is the highest ack floor
	// (with nothing pending anywhere, every record up to it is acked).
	consumer := func() (acked, pending, ackPending uint64) {
		for _, name := range subjects.StepConsumerNames(subjects.StepAggregate, "orders", subjects.DefaultPartitions) {
			c, err := js.Consumer(t.Context(), subjects.StreamClean, name)
			if err != nil {
				return 0, 1, 0
			}
			ci := c.CachedInfo()
			acked = max(acked, ci.AckFloor.Stream)
			pending += ci.NumPending
			ackPending += uint64(ci.NumAckPending)
		}
		return acked, pending, ackPending
	}
	idleAt := func(n uint64) func() bool {
		return func() bool { a, p, ap := consumer(); return a == n && p == 0 && ap == 0 }
	}

	embeddedtest.WaitFor(t, 60*time.Second, "the aggregate consumer", func() bool {
		_, err := js.Consumer(t.Context(), subjects.StreamClean, subjects.PartitionConsumerName("aggregate", "orders", subjects.DefaultPartitions-1))
		return err == nil
	})
	publish(0, 500)
	embeddedtest.WaitFor(t, 60*time.Second, "the first 500 committed", idleAt(500))

	pid := agg.cmd.Process.Pid
	var limit unix.Rlimit
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &limit))
	full := unix.Rlimit{Cur: 0, Max: limit.Max}
	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &full, nil))

	publish(500, 500)
	embeddedtest.WaitFor(t, 60*time.Second, "the aggregator to report the refused write", func() bool {
		return strings.Contains(agg.out.String(), "data dir refuses writes")
	})
	embeddedtest.WaitFor(t, 60*time.Second, "a heartbeat saying so", func() bool {
		for {
			select {
			case b := <-beats:
				if b.State == subjects.StatePaused && strings.Contains(b.LastErr, "data dir refuses writes") && strings.Contains(b.LastErr, "too large") {
					return true
				}
			default:
				return false
			}
		}
	})
	// It keeps trying with backoff, and acks nothing meanwhile; the wait is
	// longer than 3 deliveries with a 10s ack wait would take.
	embeddedtest.WaitFor(t, 90*time.Second, "a few failed retries", func() bool {
		return strings.Count(agg.out.String(), "data dir still refuses writes") >= 5
	})
	acked, _, _ := consumer()
	require.Equal(t, uint64(500), acked, "nothing acked while the data dir refuses writes")
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ), "nothing dead-lettered for a full disk")

	require.NoError(t, unix.Prlimit(pid, unix.RLIMIT_FSIZE, &limit, nil))
	embeddedtest.WaitFor(t, 120*time.Second, "everything committed after the disk has room", idleAt(1000))
	require.Contains(t, agg.out.String(), "data dir takes writes again; resuming intake")
	require.Zero(t, embeddedtest.StreamMsgs(t, js, subjects.StreamDLQ))

	eventually := func(want, sql string) {
		t.Helper()
		// Each check is a jetfleet process: no need to spin.
		embeddedtest.CheckFor(t, 60*time.Second, 200*time.Millisecond, func() error {
			if got, _ := jf(t, nil, "query", "--data-dir", dataDir, "--format", "csv", sql); got != want {
				return fmt.Errorf("%s\nwant %q\ngot  %q", sql, want, got)
			}
			return nil
		})
	}
	eventually(fmt.Sprintf("n,ids,usd\n1000,1000,%s\n", strconv.FormatFloat(wantUSD, 'f', -1, 64)),
		"SELECT count(*) AS n, count(DISTINCT order_id) AS ids, round(sum(amount_usd), 2) AS usd FROM orders")
	eventually(fmt.Sprintf("n,usd\n1000,%s\n", strconv.FormatFloat(wantUSD, 'f', -1, 64)),
		"SELECT sum(orders) AS n, round(sum(revenue_usd), 2) AS usd FROM daily_sales")
}
