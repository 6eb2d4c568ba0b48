package main_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
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
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

// binary is the jetfleet binary, built once for the package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jetfleet-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "jetfleet")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build jetfleet:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// passthrough is a pipeline that forwards records unchanged, for tests of
// the runtime rather than of validation rules.
var passthrough, _ = filepath.Abs(filepath.Join("testdata", "passthrough.yaml"))

// proc is a jetfleet process started by a test.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{mu: make(chan struct{}, 1)} }

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.b.String()
}

// start runs a jetfleet process in the background; it is killed when the
// test ends, and its output logged if the test failed.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	return startIn(t, "", env, args...)
}

// jf runs a jetfleet command to completion and returns its output and exit code.
func jf(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	return jfIn(t, "", env, args...)
}

type devBundle struct {
	url     string
	http    string
	dataDir string
	env     []string
	proc    *proc
	js      jetstream.JetStream
}

func startDev(t *testing.T, dataDir string, extra ...string) *devBundle {
	t.Helper()
	port, httpPort := embeddedtest.FreePort(t), embeddedtest.FreePort(t)
	b := &devBundle{
		url:     fmt.Sprintf("nats://127.0.0.1:%d", port),
		http:    fmt.Sprintf("127.0.0.1:%d", httpPort),
		dataDir: dataDir,
	}
	b.env = []string{"NATS_URL=" + b.url}
	args := append([]string{"dev", "--data-dir", dataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--http", b.http, "--log-format", "json"}, extra...)
	b.proc = start(t, nil, args...)
	embeddedtest.WaitFor(t, 30*time.Second, "dev ready", func() bool { return strings.Contains(b.proc.out.String(), "jetfleet dev ready") })
	nc, js := embeddedtest.Connect(t, b.url)
	_ = nc
	b.js = js
	return b
}

func writeOrders(t *testing.T, path string, from, n int) {
	t.Helper()
	var buf bytes.Buffer
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&buf, `{"order_id":"o-%d","amount":%d}`+"\n", i, i%100)
	}
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o600))
}

func TestDevMovesPublishedFileExactlyOnce(t *testing.T) {
	t.Parallel()
	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	file := filepath.Join(t.TempDir(), "orders.ndjson")
	const n = 10_000
	writeOrders(t, file, 0, n)

	out, code := jf(t, dev.env, "publish", "--file", file, "--id-field", "order_id", "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "published 10000 records")
	out, code = jf(t, dev.env, "publish", "--file", file, "--id-field", "order_id", "--bulk", "1", "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "10000 duplicates", "the same file again is all duplicates")

	embeddedtest.WaitFor(t, time.Minute, "clean records", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean) >= n })
	require.Equal(t, uint64(n), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest))
	require.Equal(t, uint64(n), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean))
}

func TestDevSIGTERMUnderLoadDrainsAndKeepsEverything(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	dev := startDev(t, dataDir, "--pipeline", passthrough)
	file := filepath.Join(t.TempDir(), "orders.ndjson")
	const n = 30_000
	writeOrders(t, file, 0, n)
	out, code := jf(t, dev.env, "publish", "--file", file, "--id-field", "order_id", "--bulk", "50", "jf.ingest.orders")
	require.Equal(t, 0, code, out)
	embeddedtest.WaitFor(t, time.Minute, "work in flight", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamValid) > 0 })

	require.NoError(t, dev.proc.cmd.Process.Signal(syscall.SIGTERM))
	stopped := time.Now()
	select {
	case err := <-dev.proc.done:
		require.NoError(t, err, "exit code 0 on SIGTERM")
		dev.proc.done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("jetfleet dev still running 5s after SIGTERM")
	}
	t.Logf("stopped in %s", time.Since(stopped))
	require.Contains(t, dev.proc.out.String(), "jetfleet dev stopped")

	// Restarted on the same data: the rest flows, nothing lost or doubled.
	dev2 := startDev(t, dataDir, "--pipeline", passthrough)
	// Bulk chunks are split per key partition in the clean stage, so wait
	// for the transform step to have handled every valid chunk.
	embeddedtest.WaitFor(t, 2*time.Minute, "every record clean", func() bool {
		return embeddedtest.StreamMsgs(t, dev2.js, subjects.StreamValid) >= n/50 && drained(t.Context(), dev2.js, subjects.StreamValid, "transform_orders")
	})
	var records int
	seen := map[string]bool{}
	for _, m := range embeddedtest.ReadStream(t, dev2.js, subjects.StreamClean) {
		for _, line := range strings.Split(string(m.Data), "\n") {
			require.False(t, seen[line], "record %s twice", line)
			seen[line] = true
			records++
		}
	}
	require.Equal(t, n, records)
}

func TestWorkerProcessKilledLosesNothing(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	_, js := embeddedtest.Connect(t, srv.ClientURL())
	env := []string{"NATS_URL=" + srv.ClientURL()}
	w := start(t, env, "worker", "--log-format", "json", "--pipeline", passthrough, "--ack-wait", "3s", "validate")
	embeddedtest.WaitFor(t, 30*time.Second, "worker started", func() bool { return strings.Contains(w.out.String(), "worker started") })

	const n = 5000
	for i := range n {
		m := nats.NewMsg(subjects.Ingest("orders"))
		m.Data = []byte(`{"order_id":"k-` + strconv.Itoa(i) + `"}`)
		m.Header.Set(subjects.HeaderMsgID, "k-"+strconv.Itoa(i))
		_, err := js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second))
		require.NoError(t, err)
	}
	<-js.PublishAsyncComplete()
	count := func() uint64 { return embeddedtest.StreamMsgs(t, js, subjects.StreamValid) }
	embeddedtest.WaitFor(t, time.Minute, "progress", func() bool { return count() > 0 })
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGKILL))
	<-w.done
	w.done <- nil

	// Unacked messages come back after AckWait; a restarted
	// worker finishes the job and outputs already published are dropped.
	start(t, env, "worker", "--log-format", "json", "--pipeline", passthrough, "--ack-wait", "3s", "validate")
	embeddedtest.WaitFor(t, 2*time.Minute, "every record valid", func() bool { return count() >= n })
	embeddedtest.CheckFor(t, time.Minute, embeddedtest.PollEvery, func() error {
		return embeddedtest.ConsumerIdle(t.Context(), js, subjects.StreamIngest, subjects.ConsumerName("validate", "orders"))
	})
	require.Equal(t, uint64(n), count(), "exactly once downstream")
}

func TestUnreachableServer(t *testing.T) {
	t.Parallel()
	dead := fmt.Sprintf("nats://127.0.0.1:%d", embeddedtest.FreePort(t))
	start0 := time.Now()
	out, code := jf(t, nil, "publish", "--nats", dead, "--file", "/dev/null", "jf.ingest.orders")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "cannot reach NATS at "+dead)
	require.Less(t, time.Since(start0), 10*time.Second)

	// A worker keeps retrying with backoff, says so, and still stops cleanly.
	w := start(t, []string{"NATS_URL=" + dead}, "worker", "--log-format", "json", "validate")
	embeddedtest.WaitFor(t, 30*time.Second, "retry log", func() bool { return strings.Contains(w.out.String(), "waiting for JetStream") })
	require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-w.done:
		require.NoError(t, err)
		w.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not stop on SIGTERM while disconnected")
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"nope"},
		{"publish"},
		{"publish", "--bogus", "x"},
		{"publish", "jf.ingest.*"},
		{"worker"},
		{"worker", "frobnicate"},
		{"dev", "extra"},
		{"dev", "--listen", "nonsense"},
		{"--log-level", "loud", "publish", "jf.ingest.x"},
	} {
		out, code := jf(t, nil, args...)
		require.Equal(t, 2, code, "%v: %s", args, out)
		require.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "one-line error for %v: %q", args, out)
	}
	out, code := jf(t, nil, "version")
	require.Equal(t, 0, code)
	require.Contains(t, out, "jetfleet")
	for _, cmd := range []string{"dev", "publish", "worker", "status"} {
		out, code := jf(t, nil, cmd, "--help")
		require.Equal(t, 0, code, out)
		require.Contains(t, out, "--nats-config"[:2], "help for %s", cmd)
	}
}

func TestDevPortInUseFailsFast(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	started := time.Now()
	out, code := jf(t, nil, "dev", "--data-dir", t.TempDir(), "--listen", l.Addr().String(), "--http", fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t)))
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "address already in use")
	require.Less(t, time.Since(started), 3*time.Second)

	bad := filepath.Join(t.TempDir(), "bad.conf")
	require.NoError(t, os.WriteFile(bad, []byte("jetstream {"), 0o600))
	out, code = jf(t, nil, "dev", "--data-dir", t.TempDir(), "--listen", fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t)), "--http", fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t)), "--nats-config", bad)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "bad.conf")
}

func TestDevIngestsLandingDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`name: landing
datasets:
  orders:
    key: order_id
    schema:
      - {name: order_id, type: VARCHAR}
      - {name: amount, type: DOUBLE}
    ingest:
      watch: landing
`), 0o600))
	dev := startDev(t, t.TempDir(), "--pipeline", spec)
	var buf bytes.Buffer
	for i := range 50 {
		fmt.Fprintf(&buf, `{"order_id":"l-%d","amount":%d}`+"\n", i, i)
	}
	tmp := filepath.Join(dir, "landing", "batch1.ndjson.tmp")
	embeddedtest.WaitFor(t, 10*time.Second, "landing dir", func() bool { _, err := os.Stat(filepath.Join(dir, "landing")); return err == nil })
	require.NoError(t, os.WriteFile(tmp, buf.Bytes(), 0o600))
	require.NoError(t, os.Rename(tmp, strings.TrimSuffix(tmp, ".tmp")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "landing", "broken.csv"), []byte("a,b\n1\n"), 0o600))

	embeddedtest.WaitFor(t, time.Minute, "clean records", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean) >= 50 })
	embeddedtest.WaitFor(t, 30*time.Second, "file moved to done/", func() bool {
		_, err := os.Stat(filepath.Join(dir, "landing", "done", "batch1.ndjson"))
		return err == nil
	})
	embeddedtest.WaitFor(t, 30*time.Second, "broken file moved to failed/ with a note", func() bool {
		_, err := os.Stat(filepath.Join(dir, "landing", "failed", "broken.csv.error"))
		return err == nil
	})
	require.Equal(t, uint64(50), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest))
}

// TestPublishFileAsLandingDirectoryWould: `jetfleet publish --file` and the
// landing directory are one ingress path: the file published, then
// dropped into the landing directory, stores nothing twice (the same
// message ids), and the records are typed by the dataset's schema as the
// ingest step's reader types them.
func TestPublishFileAsLandingDirectoryWould(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	spec := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(spec, []byte(`name: landing
datasets:
  orders:
    key: order_id
    schema:
      - {name: order_id, type: VARCHAR}
      - {name: zip, type: VARCHAR}
      - {name: amount, type: DOUBLE}
      - {name: qty, type: BIGINT}
    ingest:
      watch: landing
`), 0o600))
	dev := startDev(t, t.TempDir(), "--pipeline", spec)
	file := filepath.Join(dir, "orders.csv")
	require.NoError(t, os.WriteFile(file, []byte("order_id,zip,amount,qty\np-1,007,1.50,2\np-2,10115,3,x\np-3,,2e1,\n"), 0o600))

	out, code := jf(t, dev.env, "publish", "--file", file, "--pipeline", spec, "jf.ingest.orders")
	require.Zero(t, code, out)
	require.Contains(t, out, "published 3 records in 3 messages to jf.ingest.orders: 0 duplicates")

	// The records as the landing directory's reader makes them.
	loaded, err := pipeline.Load(spec)
	require.NoError(t, err)
	f, err := os.Open(file)
	require.NoError(t, err)
	defer f.Close()
	r, err := ingest.NewReader(ingest.CSV, f, ingest.OptionsFor(loaded.Dataset("orders")))
	require.NoError(t, err)
	s, err := dev.js.Stream(t.Context(), subjects.StreamIngest)
	require.NoError(t, err)
	for seq := uint64(1); seq <= 3; seq++ {
		rec, err := r.Next()
		require.NoError(t, err)
		m, err := s.GetMsg(t.Context(), seq)
		require.NoError(t, err)
		require.Equal(t, string(rec.Data), string(m.Data), "typed by the schema")
		require.True(t, strings.HasPrefix(m.Header.Get(subjects.HeaderMsgID), "f:"), "a content id")
	}

	embeddedtest.WaitFor(t, 10*time.Second, "landing dir", func() bool { _, err := os.Stat(filepath.Join(dir, "landing")); return err == nil })
	tmp := filepath.Join(dir, "landing", "orders.csv.tmp")
	require.NoError(t, os.WriteFile(tmp, mustRead(t, file), 0o600))
	require.NoError(t, os.Rename(tmp, strings.TrimSuffix(tmp, ".tmp")))
	embeddedtest.WaitFor(t, 30*time.Second, "file moved to done/", func() bool {
		_, err := os.Stat(filepath.Join(dir, "landing", "done", "orders.csv"))
		return err == nil
	})
	require.Equal(t, uint64(3), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest), "the landing directory's messages were the published ones again")
	require.Contains(t, dev.proc.out.String(), `"duplicates":3`)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}
