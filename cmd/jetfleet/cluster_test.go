package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// clusterBundle is a 3-node cluster of `jetfleet server` processes with
// jetfleet's streams at 3 replicas.
type clusterBundle struct {
	nodes *embeddedtest.Nodes
	js    jetstream.JetStream
}

func setupCluster(t *testing.T) *clusterBundle {
	t.Helper()
	nodes := embeddedtest.StartNodes(t, embeddedtest.NodesConfig{Command: []string{binary, "server", "--log-format", "json", "--config"}})
	nc, err := nats.Connect(nodes.ClientURLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	embeddedtest.WaitFor(t, time.Minute, "R3 streams (a meta leader)", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return subjects.Ensure(ctx, js, subjects.StreamOptions{Replicas: 3}) == nil
	})
	return &clusterBundle{nodes: nodes, js: js}
}

// ingestLeader is the node leading JF_INGEST ("" while there is none).
func (b *clusterBundle) ingestLeader(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	s, err := b.js.Stream(ctx, subjects.StreamIngest)
	if err != nil || s.CachedInfo().Cluster == nil {
		return ""
	}
	return s.CachedInfo().Cluster.Leader
}

// orders stored on jf.ingest.orders (0 when the stream does not answer).
func (b *clusterBundle) orders(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	n, _ := embeddedtest.CountMsgs(ctx, b.js, subjects.StreamIngest)
	return n
}

// producerRetries writes n orders to a file, every third one repeated on
// the next line and every fifth twice more (a producer retrying), and
// returns the file and its number of lines.
func producerRetries(t *testing.T, n int) (string, int) {
	t.Helper()
	var b bytes.Buffer
	lines := 0
	for i := range n {
		copies := 1
		if i%3 == 0 {
			copies++
		}
		if i%5 == 0 {
			copies += 2
		}
		for range copies {
			fmt.Fprintf(&b, `{"order_id":"o-%d","customer_id":"c-%d","amount":%d,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`+"\n", i, i%50, 1+i%90)
			lines++
		}
	}
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	require.NoError(t, os.WriteFile(path, b.Bytes(), 0o600))
	return path, lines
}

// TestPublishProducerRetriesOnCluster: on 3 replicas, a producer retry
// on the very next line reaches the stream while its original is still
// being stored, and the server answers "409 duplicate message id is in
// process". publish asks again and counts it a duplicate; it used to die
// after about 200 records.
func TestPublishProducerRetriesOnCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	b := setupCluster(t)
	const distinct = 1500
	file, lines := producerRetries(t, distinct)
	out, code := jf(t, []string{"NATS_URL=" + b.nodes.ClientURLs()}, "publish", "--file", file, "--id-field", "order_id", "jf.ingest.orders")
	require.Zero(t, code, out)
	m := regexp.MustCompile(`published (\d+) records in (\d+) messages to jf.ingest.orders: (\d+) duplicates \(already stored\), 0 rejected lines(?:, (\d+) published again)?`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	require.Equal(t, []string{strconv.Itoa(lines), strconv.Itoa(lines)}, m[1:3])
	dups, _ := strconv.Atoi(m[3])
	again, _ := strconv.Atoi(cmpOr(m[4], "0"))
	// A retry after a lost ack (a loaded machine) that finds its own first
	// attempt stored counts as published again, not as a duplicate.
	require.LessOrEqual(t, dups, lines-distinct, out)
	require.GreaterOrEqual(t, dups+again, lines-distinct, "every producer retry is a duplicate: %s", out)
	require.Equal(t, uint64(distinct), b.orders(t), "each order stored once")
}

// TestPublishRidesThroughLeaderKill SIGKILLs the node process leading
// JF_INGEST while `jetfleet publish` sends a file with producer retries,
// then restarts it. publish says what it waits for, goes on once a new
// leader is elected, and stores every order once; the test logs how long
// the election and the pause took (docs/cluster.md).
func TestPublishRidesThroughLeaderKill(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	t0 := time.Now()
	b := setupCluster(t)
	t.Logf("cluster up after %s", time.Since(t0).Round(100*time.Millisecond))
	const distinct = 1500
	file, lines := producerRetries(t, distinct)
	leader := b.ingestLeader(t)
	require.NotEmpty(t, leader)
	victim := b.nodes.Node(leader)
	// The publisher sits on a node that survives, as most clients of a
	// 3-node cluster do, so what it sees is the stream without a leader.
	var urls []string
	for _, n := range b.nodes.Nodes {
		if n != victim {
			urls = append(urls, n.URL)
		}
	}
	pub := start(t, []string{"NATS_URL=" + strings.Join(urls, ",")}, "publish", "--log-format", "json",
		"--file", file, "--id-field", "order_id", "--rate", "200", "--retry-for", "90s", "jf.ingest.orders")

	embeddedtest.WaitFor(t, time.Minute, "publish under way", func() bool { return b.orders(t) >= distinct/5 })
	before := b.orders(t)
	killed := time.Now()
	victim.Kill()
	t.Logf("SIGKILLed %s (JF_INGEST leader) with %d orders stored", leader, before)

	var elected, resumed time.Duration
	embeddedtest.WaitFor(t, time.Minute, "a new JF_INGEST leader", func() bool {
		l := b.ingestLeader(t)
		if l != "" && l != leader && elected == 0 {
			elected = time.Since(killed)
		}
		if n := b.orders(t); n > before && resumed == 0 {
			resumed = time.Since(killed)
		}
		return elected > 0 && resumed > 0
	})
	// The node comes back while publish is still going.
	b.nodes.Restart(t, victim)
	b.nodes.WaitHealthy(t, victim, time.Minute)
	restarted := time.Since(killed)
	t.Logf("node restarted %s after the start", time.Since(t0).Round(100*time.Millisecond))

	select {
	case err := <-pub.done:
		require.NoError(t, err, pub.out.String())
		pub.done <- err
	case <-time.After(3 * time.Minute):
		t.Fatalf("publish still running 3 minutes after the kill:\n%s", pub.out.String())
	}
	t.Logf("publish done %s after the start", time.Since(t0).Round(100*time.Millisecond))
	out := pub.out.String()
	require.Contains(t, out, "JF_INGEST has no leader, waiting (", "publish says what it waits for")
	m := regexp.MustCompile(`publishing again after ([0-9.]+m?s)`).FindStringSubmatch(out)
	require.NotNil(t, m, "publish says when the wait is over:\n%s", out)
	require.Regexp(t, fmt.Sprintf(`published %d records in %d messages to jf.ingest.orders: \d+ duplicates`, lines, lines), out)
	require.Equal(t, uint64(distinct), b.orders(t), "every order stored once: no loss, no copy")
	t.Logf("MEASURED: SIGKILL of the JF_INGEST leader: new leader after %s, stream growing again after %s, publish reported a wait of %s; node back and healthy after %s",
		elected.Round(100*time.Millisecond), resumed.Round(100*time.Millisecond), m[1], restarted.Round(100*time.Millisecond))
}
