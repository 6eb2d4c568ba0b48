package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// TestServerSIGKILLKeepsAcknowledgedMessages is what the fsync setting
// means for a killed server process: with nats-server's default (fsync
// every 2 minutes) as with sync always, every message the server
// acknowledged survives a SIGKILL, because written data sits in the OS
// page cache, which outlives the process. Only an OS crash or power loss
// drops unsynced data; no test here can cause one.
//
// Consumer acks are another matter: the server writes a consumer's state
// in the background, so the last acks before a SIGKILL may be forgotten,
// even ones it confirmed (DoubleAck) and even with sync always. Those
// messages are delivered again: at-least-once, which the pipeline's
// derived message ids and key de-duplication absorb.
func TestServerSIGKILLKeepsAcknowledgedMessages(t *testing.T) {
	t.Parallel()
	for _, sync := range []string{"", "always"} {
		t.Run("sync="+cmpOr(sync, "default"), func(t *testing.T) {
			t.Parallel()
			store := t.TempDir()
			port := embeddedtest.FreePort(t)
			args := []string{"server", "--log-format", "json", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--store-dir", store}
			if sync != "" {
				args = append(args, "--sync", sync)
			}
			srv := start(t, nil, args...)
			url := fmt.Sprintf("nats://127.0.0.1:%d", port)
			embeddedtest.WaitFor(t, 30*time.Second, "server ready", func() bool { return strings.Contains(srv.out.String(), url) })
			want := "1s"
			if sync == "always" {
				want = "always"
			}
			require.Contains(t, srv.out.String(), `"sync":"`+want+`"`)

			nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
			require.NoError(t, err)
			t.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			require.NoError(t, err)
			ctx := t.Context()
			s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}, Storage: jetstream.FileStorage})
			require.NoError(t, err)
			cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
			require.NoError(t, err)

			const n, acked = 5000, 1000
			started := time.Now()
			for i := range n {
				_, err := js.PublishAsync("keep.x", []byte(strconv.Itoa(i)), jetstream.WithStallWait(time.Minute))
				require.NoError(t, err)
			}
			embeddedtest.WaitOrTimeout(t, js.PublishAsyncComplete(), time.Minute, "the publishes acknowledged")
			t.Logf("sync=%s: %d acknowledged publishes in %s", cmpOr(sync, "default"), n, time.Since(started).Round(time.Millisecond))
			batch, err := cons.Fetch(acked, jetstream.FetchMaxWait(10*time.Second))
			require.NoError(t, err)
			got := 0
			for m := range batch.Messages() {
				require.NoError(t, m.DoubleAck(ctx)) // the server confirmed the ack
				got++
			}
			require.Equal(t, acked, got)

			// Well inside the 2-minute interval: nothing was fsynced for sure.
			require.NoError(t, srv.cmd.Process.Signal(syscall.SIGKILL))
			<-srv.done
			srv.done <- nil
			srv2 := start(t, nil, args...)
			embeddedtest.WaitFor(t, 30*time.Second, "server restarted", func() bool { return strings.Contains(srv2.out.String(), url) })

			var info *jetstream.StreamInfo
			embeddedtest.WaitFor(t, 30*time.Second, "stream back", func() bool {
				s, err := js.Stream(ctx, "KEEP")
				if err != nil {
					return false
				}
				info, err = s.Info(ctx)
				return err == nil
			})
			require.Equal(t, uint64(n), info.State.Msgs, "every acknowledged message survives")
			c, err := js.Consumer(ctx, "KEEP", "c")
			require.NoError(t, err)
			ci, err := c.Info(ctx)
			require.NoError(t, err)
			require.LessOrEqual(t, ci.AckFloor.Stream, uint64(acked))
			// Whatever is above the surviving ack floor comes again.
			require.Equal(t, uint64(n)-ci.AckFloor.Stream, ci.NumPending+uint64(ci.NumAckPending), "every message not known as acked is delivered again")
			t.Logf("sync=%s: %d of %d confirmed acks survived the SIGKILL", cmpOr(sync, "default"), ci.AckFloor.Stream, acked)
		})
	}
}

func TestServerCommand(t *testing.T) {
	t.Parallel()
	store := filepath.Join(t.TempDir(), "nats")
	conf := filepath.Join(t.TempDir(), "n.conf")
	port := embeddedtest.FreePort(t)
	// A config file of its own, store_dir included: no flag needed.
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(`
server_name: from-file
listen: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: 10s }
`, port, store)), 0o600))
	srv := start(t, nil, "server", "--log-format", "json", "--config", conf)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	// The client URL is printed after the ready line.
	embeddedtest.WaitFor(t, 30*time.Second, "server ready and its URL printed", func() bool {
		out := srv.out.String()
		return strings.Contains(out, "jetfleet server ready") && strings.Contains(out, url+"\n")
	})
	out := srv.out.String()
	require.Contains(t, out, `"name":"from-file"`)
	require.Contains(t, out, `"sync":"10s"`)
	require.Contains(t, out, `"store":"`+store+`"`)
	_, js := embeddedtest.Connect(t, url)
	_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}})
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(store, "jetstream"))
	require.NoError(t, err, "JetStream stores under the config's store_dir")

	require.NoError(t, srv.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-srv.done:
		require.NoError(t, err, "exit 0 on SIGTERM")
		srv.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("server still running 20s after SIGTERM")
	}
	require.Contains(t, srv.out.String(), "jetfleet server stopped")

	for _, args := range [][]string{
		{"server", "--sync", "sometimes"},
		{"server", "--listen", "nonsense"},
		{"server", "extra"},
	} {
		out, code := jf(t, nil, args...)
		require.Equal(t, 2, code, "%v: %s", args, out)
	}
	out, code := jf(t, nil, "server", "--config", filepath.Join(t.TempDir(), "missing.conf"))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "missing.conf")
}
