package main_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/bench"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// TestAggregateReplicasProduceTheSameMarts runs the shop pipeline's clean
// stream through aggregators of different shapes, each from the start of
// the stream into its own data dir, and requires from all of them the
// marts one batch DuckDB job computes over the stream's distinct records:
//
//   - one `jetfleet worker aggregate` process owning every partition;
//   - two processes claiming partitions through leases;
//   - three processes claiming partitions, one of them SIGKILLed mid-run:
//     the other two take its partitions over after the lease TTL.
func TestAggregateReplicasProduceTheSameMarts(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	url := srv.ClientURL()
	nc, js := embeddedtest.Connect(t, url)
	ctx := t.Context()
	spec := examples.Shop()
	ds := spec.Dataset("orders")
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)

	// The input: generated orders through validate and transform.
	fl, err := fleet.Build(fleet.Config{Conn: nc, Logger: log, Spec: spec, Steps: []string{"validate", "transform"}, LoadLookups: true, DataDir: t.TempDir()})
	require.NoError(t, err)
	require.NoError(t, fl.Prepare(ctx))
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, len(fl.Members))
	for _, m := range fl.Members {
		go func() {
			_ = m.Run(runCtx)
			done <- struct{}{}
		}()
	}
	t.Cleanup(func() {
		cancel()
		for range fl.Members {
			<-done
		}
		_ = fl.Close(context.Background())
	})
	const records = 6_000
	gen := bench.NewOrderGenerator(7, 0.01, 0.05)
	for i := range records {
		line, _ := gen.Next()
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = line
		m.Header.Set(subjects.HeaderMsgID, "o-"+strconv.Itoa(i))
		_, err := js.PublishMsgAsync(m)
		require.NoError(t, err)
		if i%500 == 499 || i == records-1 {
			embeddedtest.WaitOrTimeout(t, js.PublishAsyncComplete(), time.Minute, "the publishes acknowledged")
		}
	}
	embeddedtest.WaitFor(t, 2*time.Minute, "validate and transform drained", func() bool {
		return drained(ctx, js, subjects.StreamIngest, "validate_orders") && drained(ctx, js, subjects.StreamValid, "transform_orders")
	})
	cleanStream, err := js.Stream(ctx, subjects.StreamClean)
	require.NoError(t, err)
	lastSeq := cleanStream.CachedInfo().State.LastSeq
	require.Positive(t, lastSeq)

	began := time.Now()
	t.Logf("input ready: %d clean messages", lastSeq)
	expected, distinct, err := bench.ExpectedMarts(ctx, js, spec, ds, t.TempDir())
	require.NoError(t, err)

	aggregators := func(n int, kill bool) string {
		dataDir := t.TempDir()
		for p := range subjects.DefaultPartitions {
			err := js.DeleteConsumer(ctx, subjects.StreamClean, subjects.PartitionConsumerName("aggregate", "orders", p))
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				require.NoError(t, err)
			}
		}
		args := []string{"worker", "--nats", url, "--data-dir", dataDir, "--ack-wait", "5s", "--log-format", "json", "--memory-limit", "256MB"}
		if n > 1 {
			args = append(args, "--claim", "--lease-ttl", "2s")
		}
		procs := make([]*proc, n)
		for i := range procs {
			procs[i] = start(t, nil, append(args, "aggregate")...)
		}
		if kill {
			victim := procs[0]
			embeddedtest.WaitFor(t, time.Minute, "the victim to claim and commit", func() bool {
				return strings.Contains(victim.out.String(), "claimed partition") && delivered(ctx, js) > 0
			})
			t.Logf("killing a replica at %d of %d records acked", delivered(ctx, js), lastSeq)
			require.NoError(t, victim.cmd.Process.Signal(syscall.SIGKILL))
			<-victim.done
			victim.done <- errors.New("killed") // for the cleanup
			procs = procs[1:]
		}
		embeddedtest.WaitFor(t, 3*time.Minute, fmt.Sprintf("%d aggregator(s) to fold in every record", n), func() bool {
			for p := range subjects.DefaultPartitions {
				if !drained(ctx, js, subjects.StreamClean, subjects.PartitionConsumerName("aggregate", "orders", p)) {
					return false
				}
			}
			ms, err := marts.ReadManifests(dataDir)
			if err != nil || len(ms) != len(spec.Marts)+1 {
				return false
			}
			for _, m := range ms {
				if m.LastSeq < lastSeq {
					return false
				}
			}
			// LastSeq counts committed records only: a partition taken
			// over from the killed replica may commit its backlog after
			// the builder last looked, and drain before the next look.
			// The lake's rows say every record is folded in.
			lake, err := marts.ReadManifest(marts.LakePath(dataDir, "orders"))
			return err == nil && lake.Rows >= int64(distinct)
		})
		for _, p := range procs {
			require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		}
		for _, p := range procs {
			select {
			case err := <-p.done:
				require.NoError(t, err, p.out.String())
				p.done <- err
			case <-time.After(time.Minute):
				t.Fatalf("aggregator did not stop:\n%s", p.out.String())
			}
		}
		if kill {
			joined := procs[0].out.String() + procs[1].out.String()
			require.Contains(t, joined, "claimed partition")
		}
		return dataDir
	}

	for _, run := range []struct {
		name string
		n    int
		kill bool
	}{{"one process", 1, false}, {"two processes", 2, false}, {"three processes, one killed", 3, true}} {
		dataDir := aggregators(run.n, run.kill)
		t.Logf("%s done after %s", run.name, time.Since(began))
		// The lake before the marts: a short lake points at the intake
		// (records committed that no flush took, or a LastSeq claimed too
		// early), a short mart alone at the mart build.
		lake, err := marts.ReadManifest(marts.LakePath(dataDir, "orders"))
		require.NoError(t, err)
		require.Equal(t, int64(distinct), lake.Rows, "%s: lake rows", run.name)
		mism, err := bench.CompareMarts(ctx, dataDir, spec, ds.Name, expected)
		require.NoError(t, err)
		require.Empty(t, mism, run.name)
	}
}

func drained(ctx context.Context, js jetstream.JetStream, stream, consumer string) bool {
	c, err := js.Consumer(ctx, stream, consumer)
	if err != nil {
		return false
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0
}

// delivered sums the acked floor of the partition consumers.
func delivered(ctx context.Context, js jetstream.JetStream) uint64 {
	var sum uint64
	for p := range subjects.DefaultPartitions {
		c, err := js.Consumer(ctx, subjects.StreamClean, subjects.PartitionConsumerName("aggregate", "orders", p))
		if err != nil {
			continue
		}
		if info, err := c.Info(ctx); err == nil {
			sum += info.AckFloor.Consumer
		}
	}
	return sum
}
