package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/bench"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// TestFailover SIGKILLs the cluster node process that leads JF_INGEST
// while the shop pipeline runs on a 3-node cluster (each node a process
// of its own) with every stream and bucket at 3 replicas, and checks that
// nothing is lost, the pipeline goes on, the workers reconnect and say so,
// and the node catches up after a restart. It logs how long the cluster
// took to elect a new leader and to take publishes again (docs/cluster.md).
func TestFailover(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	runFailover(t, failoverCase{records: 2000})
}

type failoverCase struct {
	records int
	// bulk packs records into messages of this many; 0 is record mode.
	bulk int
}

// syncBuffer collects log lines for assertions; zerolog writes from many
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// poll is how often the test checks cluster state: each check is a few
// requests, and elections take seconds.
const poll = 50 * time.Millisecond

// connect dials the cluster the way `jetfleet worker` does, first trying
// the URL of node first (so a worker is known to sit on the node we kill).
func connect(t *testing.T, c *embeddedtest.Nodes, first int, log zerolog.Logger) *nats.Conn {
	t.Helper()
	urls := []string{c.Nodes[first].URL}
	for i, n := range c.Nodes {
		if i != first {
			urls = append(urls, n.URL)
		}
	}
	opts := append(workers.ReconnectOptions(log), nats.DontRandomize(), nats.ReconnectWait(250*time.Millisecond))
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

func nodeIndex(t *testing.T, c *embeddedtest.Nodes, name string) int {
	t.Helper()
	i := slices.IndexFunc(c.Nodes, func(n *embeddedtest.Node) bool { return n.Name == name })
	require.GreaterOrEqual(t, i, 0, "no node named %q", name)
	return i
}

func runFailover(t *testing.T, fc failoverCase) {
	logs := &syncBuffer{}
	log := zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), logs)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	c := embeddedtest.StartNodes(t, embeddedtest.NodesConfig{})
	ctx := t.Context()

	streams := subjects.StreamOptions{Replicas: 3}
	admin := connect(t, c, 0, log.With().Str("conn", "admin").Logger())
	// Async publishes lost with a dying leader time out and are retried.
	js, err := jetstream.New(admin, jetstream.WithPublishAsyncTimeout(5*time.Second))
	require.NoError(t, err)
	// Replicated streams need a meta leader; create them before the
	// workers so the stream leader can be found first.
	embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
		return subjects.Ensure(ctx, js, streams)
	})
	// A process started without a replica count joins the R3 streams; one
	// that asks for another count is told, not obeyed.
	require.NoError(t, subjects.Ensure(ctx, js, subjects.StreamOptions{}))
	require.ErrorIs(t, subjects.Ensure(ctx, js, subjects.StreamOptions{Replicas: 1}), subjects.ErrStreamConflict)
	leaderName := streamLeader(t, js, subjects.StreamIngest)
	victim := nodeIndex(t, c, leaderName)
	other := (victim + 1) % 3
	t.Logf("JF_INGEST leader is %s (node %d)", leaderName, victim)

	// The pipeline as separate fleets, one connection each, like separate
	// `jetfleet worker` processes: validate sits on the node that dies.
	spec := examples.Shop()
	dataDir := t.TempDir()
	steps := []struct {
		step string
		node int
	}{{"validate", victim}, {"transform", other}, {"aggregate", victim}, {"ingest", other}}
	tree := supervisor.NewTree(supervisor.TreeConfig{Logger: log})
	for _, s := range steps {
		slog := log.With().Str("process", s.step).Logger()
		fl, err := fleet.Build(fleet.Config{
			Conn: connect(t, c, s.node, slog), Logger: slog, Spec: spec,
			Steps: []string{s.step}, Streams: streams, LoadLookups: s.step == "transform",
			// A nak or ack lost with a dying leader comes back after AckWait.
			Consumer: subjects.ConsumerOptions{AckWait: 10 * time.Second},
			DataDir:  dataDir,
		})
		require.NoError(t, err)
		require.NoError(t, fl.Prepare(ctx))
		t.Cleanup(func() { _ = fl.Close(context.Background()) })
		for _, m := range fl.Members {
			tree.Add(m.Name, m.Run)
		}
	}
	supConn := connect(t, c, victim, log.With().Str("process", "supervisor").Logger())
	sup, err := supervisor.New(supervisor.Config{Conn: supConn, Logger: log, Streams: streams})
	require.NoError(t, err)
	require.NoError(t, sup.Start(ctx))
	runCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	treeDone := make(chan error, 1)
	go func() { treeDone <- tree.Run(runCtx) }()
	t.Cleanup(func() {
		stopFleet()
		select {
		case err := <-treeDone:
			require.NoError(t, err)
		case <-time.After(embeddedtest.Timeout(60 * time.Second)):
			t.Error("fleet did not stop")
		}
	})
	// The buckets are replicated too: the fleet state, the lookup table
	// and (created by the ingest step) the landing object store.
	// A process without a replica count (a supervisor, an alert step)
	// binds the fleet bucket without shrinking it.
	_, err = subjects.EnsureKV(ctx, js, subjects.FleetKV(subjects.StreamOptions{}), subjects.StreamOptions{})
	require.NoError(t, err)
	for _, bucket := range []string{"KV_" + subjects.FleetBucket, "KV_" + subjects.LookupBucket("fx"), "OBJ_" + subjects.LandingBucket} {
		embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
			s, err := js.Stream(ctx, bucket)
			if err != nil {
				return err
			}
			require.Equal(t, 3, s.CachedInfo().Config.Replicas, bucket)
			return nil
		})
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, sup.Stop(sctx))
	})

	// The input: shop orders with some invalid and duplicate ones, each
	// with its order id as message id, as `publish --id-field` sends them.
	gen := bench.NewOrderGenerator(7, 0.05, 0.05)
	var msgs []*nats.Msg
	validIDs := map[string]bool{}
	invalid, dups := 0, 0
	for range fc.records {
		line, kind := gen.Next()
		id := orderID(line)
		switch kind {
		case bench.Valid:
			validIDs[id] = true
		case bench.Invalid:
			invalid++
		case bench.Duplicate:
			dups++
		}
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = line
		m.Header.Set(subjects.HeaderMsgID, id)
		msgs = append(msgs, m)
	}
	if fc.bulk > 0 {
		msgs = bulkMsgs(msgs, fc.bulk)
	}
	// Publish in the background, as a client would, through the kill.
	pubStart := time.Now()
	pubDone := make(chan error, 1)
	var firstAfterKill atomic.Int64 // ns after the kill of the first publish stored then
	var killedNs atomic.Int64
	go func() { pubDone <- publishAll(ctx, js, msgs, &killedNs, &firstAfterKill) }()

	// Kill the JF_INGEST leader while the pipeline is busy.
	// Clean messages are records in record mode, chunks in bulk mode.
	underway := uint64(len(validIDs) / 5)
	if fc.bulk > 0 {
		underway = uint64(len(msgs) / 5)
	}
	embeddedtest.CheckFor(t, 60*time.Second+publishTime(fc)/5, poll, func() error {
		if n := embeddedtest.StreamMsgs(t, js, subjects.StreamClean); n < underway {
			return fmt.Errorf("pipeline under way: %d of %d clean messages", n, underway)
		}
		return nil
	})
	cleanAtKill := embeddedtest.StreamMsgs(t, js, subjects.StreamClean)
	killedAt := time.Now()
	killedNs.Store(killedAt.UnixNano())
	c.Nodes[victim].Kill()
	t.Logf("SIGKILLed %s with %d of %d clean records stored", leaderName, cleanAtKill, len(validIDs))
	elected := make(chan time.Duration, 1)
	go func() { elected <- awaitNewLeader(ctx, js, subjects.StreamIngest, leaderName, killedAt) }()

	var resumed time.Duration
	embeddedtest.CheckFor(t, 60*time.Second, poll, func() error {
		n, err := embeddedtest.CountMsgs(ctx, js, subjects.StreamClean)
		if n > cleanAtKill || n == uint64(len(validIDs)) {
			resumed = time.Since(killedAt)
			return nil
		}
		return fmt.Errorf("clean stream to grow after the kill: %d messages (%v)", n, err)
	})
	select {
	case err := <-pubDone:
		require.NoError(t, err)
	case <-time.After(embeddedtest.Timeout(60*time.Second + publishTime(fc))):
		require.FailNow(t, "publisher stuck")
	}
	t.Logf("published %d messages in %s", len(msgs), time.Since(pubStart).Round(time.Millisecond))
	var election time.Duration
	select {
	case election = <-elected:
	case <-time.After(embeddedtest.Timeout(60 * time.Second)):
		require.FailNow(t, "no new JF_INGEST leader within a minute of the kill")
	}
	newLeader := streamLeader(t, js, subjects.StreamIngest)
	require.NotEqual(t, leaderName, newLeader)

	// Every record accounted for: clean + dead + duplicates = published.
	embeddedtest.CheckFor(t, 60*time.Second+publishTime(fc), poll, func() error {
		clean, err := embeddedtest.CountMsgs(ctx, js, subjects.StreamClean)
		if err != nil {
			return err
		}
		dead, err := embeddedtest.CountMsgs(ctx, js, subjects.StreamDLQ)
		if err != nil {
			return err
		}
		if fc.bulk > 0 { // chunks: the content check below counts records
			clean = uint64(len(validIDs))
		}
		if clean != uint64(len(validIDs)) || dead != uint64(invalid) {
			return errors.New("every record accounted for: clean " + itoa(clean) + "/" + itoa(uint64(len(validIDs))) + ", dead " + itoa(dead) + "/" + itoa(uint64(invalid)))
		}
		return consumersDone(ctx, js)
	})
	done := time.Since(killedAt)
	wctx, cancel := context.WithTimeout(ctx, embeddedtest.Timeout(60*time.Second))
	defer cancel()
	_, err = supervisor.WaitIdle(wctx, js, supervisor.WaitIdleOptions{Snapshot: []supervisor.SnapshotOption{supervisor.WithMarts(supervisor.DirMarts(dataDir))}})
	require.NoError(t, err, "status --wait-idle on a cluster")
	t.Logf("MEASURED: node %s SIGKILLed; new JF_INGEST leader %s after %s; first publish stored %s after the kill; clean stream grew again after %s; all %d records accounted for %s after the kill",
		leaderName, newLeader, election.Round(100*time.Millisecond), time.Duration(firstAfterKill.Load()).Round(100*time.Millisecond), resumed.Round(100*time.Millisecond), fc.records, done.Round(100*time.Millisecond))

	ingest := embeddedtest.StreamMsgs(t, js, subjects.StreamIngest)
	if fc.bulk == 0 {
		require.Equal(t, uint64(len(validIDs)+invalid), ingest, "one message per distinct record id")
	}
	require.Equal(t, fc.records, len(validIDs)+invalid+dups, "clean + dead + duplicates = published")
	clean := cleanOrderIDs(t, js)
	cleanRecords := 0
	for id, n := range clean {
		require.True(t, validIDs[id], "order %s in the clean stream is not a valid one", id)
		if fc.bulk == 0 {
			require.Equal(t, 1, n, "order %s: record ids make every hop exactly once", id)
		}
		cleanRecords += n
	}
	require.Len(t, clean, len(validIDs), "every valid order reached the clean stream")
	if fc.bulk > 0 {
		// Bulk chunks have their own ids: a duplicate record in another
		// chunk passes the server; the aggregator drops it by key.
		require.Equal(t, len(validIDs)+dups, cleanRecords)
	}
	// The lake holds each valid order once: the marts are exact.
	embeddedtest.CheckFor(t, 60*time.Second, poll, func() error {
		outs, err := supervisor.DirMarts(dataDir)(ctx)
		if err != nil {
			return err
		}
		lake := slices.IndexFunc(outs, func(m supervisor.MartStatus) bool { return m.Name == "lake:orders" })
		if lake < 0 {
			return errors.New("lake:orders not written")
		}
		if outs[lake].Rows != int64(len(validIDs)) {
			return fmt.Errorf("lake has %d rows, want %d (last seq %d, unflushed %d)", outs[lake].Rows, len(validIDs), outs[lake].LastSeq, outs[lake].Unflushed)
		}
		return nil
	})

	// The workers on the dead node logged the disconnect and the reconnect.
	out := logs.String()
	require.Contains(t, out, "disconnected from NATS; reconnecting")
	require.Contains(t, out, "reconnected to NATS")
	require.Contains(t, out, "lost NATS connection; the client reconnects on its own")
	require.Contains(t, out, "NATS connection back")

	// Status reports the reconnect, from the workers' heartbeats, and the
	// replica that is down.
	var screen bytes.Buffer
	embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
		st, err := supervisor.Snapshot(ctx, js)
		if err != nil {
			return err
		}
		found := false
		for _, s := range st.Steps {
			for _, w := range s.Workers {
				if w.Step == "validate" && w.Liveness == supervisor.LivenessAlive && w.Conn != nil && w.Conn.Reconnects >= 1 && w.Conn.Server != leaderName {
					found = true
				}
			}
		}
		if !found {
			return errors.New("no live validate worker with a reconnect yet")
		}
		screen.Reset()
		require.NoError(t, supervisor.RenderText(&screen, st, supervisor.TextOptions{}))
		// A node shut down is offline at once; one that vanished is down
		// once its followers have not heard from it for a while.
		if !strings.Contains(screen.String(), "stream JF_INGEST: replica(s) "+leaderName+" down; 2 of 3 up") {
			return errors.New("JF_INGEST replica not reported down yet; notes: " + strings.Join(st.Notes, " | "))
		}
		return nil
	})
	t.Logf("status after the kill:\n%s", screen.String())
	require.Contains(t, screen.String(), "reconnected to NATS")
	require.Contains(t, screen.String(), "stream JF_INGEST: replica(s) "+leaderName+" down; 2 of 3 up")
	require.Regexp(t, `JF_INGEST\s+3\s+`+newLeader, screen.String())

	// The node comes back and catches up with the streams it replicates.
	cleanMsgs := embeddedtest.StreamMsgs(t, js, subjects.StreamClean)
	c.Restart(t, c.Nodes[victim])
	embeddedtest.CheckFor(t, 60*time.Second, poll, func() error {
		return nodeCaughtUp(ctx, c.Nodes[victim], map[string]uint64{
			subjects.StreamIngest: ingest,
			subjects.StreamClean:  cleanMsgs,
			subjects.StreamDLQ:    uint64(invalid),
		})
	})
	for _, name := range []string{subjects.StreamIngest, subjects.StreamValid, subjects.StreamClean} {
		embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
			return replicasCurrent(ctx, js, name)
		})
	}
	embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
		st, err := supervisor.Snapshot(ctx, js)
		if err != nil {
			return err
		}
		for _, n := range st.Notes {
			if strings.Contains(n, "down;") || strings.Contains(n, "not current") {
				return errors.New("status without a replica down: " + n)
			}
		}
		return nil
	})
}

// publishTime is a generous bound on publishing and processing fc's
// records on a slow machine: 20ms a record.
func publishTime(fc failoverCase) time.Duration {
	return time.Duration(fc.records) * 20 * time.Millisecond
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func orderID(line []byte) string {
	var o struct {
		OrderID string `json:"order_id"`
	}
	if json.Unmarshal(line, &o) == nil && o.OrderID != "" {
		return o.OrderID
	}
	return subjects.HashID(string(line))
}

// bulkMsgs packs record messages into bulk messages of n records.
func bulkMsgs(recs []*nats.Msg, n int) []*nats.Msg {
	var out []*nats.Msg
	for i := 0; i < len(recs); i += n {
		chunk := recs[i:min(i+n, len(recs))]
		var body [][]byte
		for _, r := range chunk {
			body = append(body, r.Data)
		}
		m := nats.NewMsg(recs[i].Subject)
		m.Data = subjects.JoinBulk(body)
		m.Header.Set(subjects.HeaderRecords, itoa(uint64(len(chunk))))
		m.Header.Set(subjects.HeaderMsgID, "chunk-"+itoa(uint64(i)))
		out = append(out, m)
	}
	return out
}

// publishAll publishes msgs asynchronously in windows, and republishes
// each message whose publish failed (a leader election, a lost
// connection) until it is stored: the message id makes a retry of a
// stored message a duplicate, not a copy. It notes how long after
// killedNs (once set) the first publish was stored.
func publishAll(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, killedNs, firstAfterKill *atomic.Int64) error {
	const window = 100
	for start := 0; start < len(msgs); start += window {
		todo := msgs[start:min(start+window, len(msgs))]
		deadline := time.Now().Add(embeddedtest.Timeout(60 * time.Second))
		for len(todo) > 0 {
			var failed []*nats.Msg
			var lastErr error
			futures := make([]jetstream.PubAckFuture, 0, len(todo))
			for _, m := range todo {
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					failed, lastErr = append(failed, m), err
					continue
				}
				futures = append(futures, f)
			}
			for _, f := range futures {
				select {
				case <-f.Ok():
					if k := killedNs.Load(); k > 0 && firstAfterKill.Load() == 0 {
						firstAfterKill.Store(time.Now().UnixNano() - k)
					}
				case err := <-f.Err():
					failed, lastErr = append(failed, f.Msg()), err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if len(failed) > 0 && time.Now().After(deadline) {
				return fmt.Errorf("publish %d messages: %w", len(failed), lastErr)
			}
			todo = failed
		}
	}
	return nil
}

func streamLeader(t *testing.T, js jetstream.JetStream, name string) string {
	t.Helper()
	var leader string
	embeddedtest.CheckFor(t, 30*time.Second, poll, func() error {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			return err
		}
		ci := s.CachedInfo().Cluster
		if ci == nil || ci.Leader == "" {
			return errors.New(name + ": no leader")
		}
		leader = ci.Leader
		return nil
	})
	return leader
}

// consumersDone returns nil when every jetfleet consumer has delivered
// and settled everything, else the first that has not.
func consumersDone(ctx context.Context, js jetstream.JetStream) error {
	for _, step := range []subjects.Step{subjects.StepValidate, subjects.StepTransform, subjects.StepAggregate} {
		for _, name := range subjects.StepConsumerNames(step, "orders", subjects.DefaultPartitions) {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := embeddedtest.ConsumerIdle(cctx, js, subjects.StreamFor(step.Input), name)
			cancel()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// cleanOrderIDs reads the whole clean stream and counts its records
// per order id.
func cleanOrderIDs(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	ids := map[string]int{}
	for _, m := range embeddedtest.ReadStream(t, js, subjects.StreamClean) {
		for _, rec := range bytes.Split(bytes.TrimSpace(m.Data), []byte("\n")) {
			ids[orderID(rec)]++
		}
	}
	return ids
}

// awaitNewLeader polls until stream has a leader other than old and
// returns how long after killedAt that was (0 if ctx ends first).
func awaitNewLeader(ctx context.Context, js jetstream.JetStream, stream, old string, killedAt time.Time) time.Duration {
	for ctx.Err() == nil {
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		s, err := js.Stream(sctx, stream)
		cancel()
		if err == nil {
			if ci := s.CachedInfo().Cluster; ci != nil && ci.Leader != "" && ci.Leader != old {
				return time.Since(killedAt)
			}
		}
		select { // polling the cluster: an election sends no event to clients
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return 0
}

// nodeCaughtUp returns nil when node's own copy of each stream holds
// want messages, else which falls short.
func nodeCaughtUp(ctx context.Context, node *embeddedtest.Node, want map[string]uint64) error {
	jsz, err := node.Jsz(ctx)
	if err != nil {
		return err
	}
	have := map[string]uint64{}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.Streams {
			have[s.Name] = s.State.Msgs
		}
	}
	for name, n := range want {
		if have[name] != n {
			return errors.New(node.Name + " " + name + ": " + itoa(have[name]) + " of " + itoa(n))
		}
	}
	return nil
}

// replicasCurrent returns nil when every replica of a stream is online
// and current, else which is not.
func replicasCurrent(ctx context.Context, js jetstream.JetStream, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return err
	}
	ci := s.CachedInfo().Cluster
	if ci == nil || ci.Leader == "" || len(ci.Replicas) != 2 {
		return errors.New(name + ": replicas not all known")
	}
	for _, r := range ci.Replicas {
		if r.Offline || !r.Current {
			return errors.New(name + ": replica " + r.Name + " not current")
		}
	}
	return nil
}
