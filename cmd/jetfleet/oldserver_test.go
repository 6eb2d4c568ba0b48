package main_test

import (
	"fmt"
	"os"
	"os/exec"
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

// oldNATSServer finds a nats-server binary older than the contract needs:
// $JETFLEET_OLD_NATS_SERVER, else nats-server on PATH or Debian's
// /usr/sbin/nats-server (2.9 in bookworm; scripts/tools.sh installs it).
// Without one the test skips, except under CI=true, where it fails.
func oldNATSServer(t *testing.T) (path, version string) {
	t.Helper()
	missing := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...) + " (scripts/tools.sh installs Debian's nats-server 2.9)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var candidates []string
	if p := os.Getenv("JETFLEET_OLD_NATS_SERVER"); p != "" {
		candidates = append(candidates, p)
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/sbin/nats-server")
	re := regexp.MustCompile(`v(\d+)\.(\d+)\.(\d+)`)
	for _, c := range candidates {
		out, err := exec.CommandContext(t.Context(), c, "--version").CombinedOutput()
		if err != nil {
			continue
		}
		m := re.FindStringSubmatch(string(out))
		if m == nil {
			continue
		}
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		if major == 2 && minor < 11 {
			return c, strings.TrimPrefix(m[0], "v")
		}
	}
	missing("no nats-server older than %s found in %v", subjects.MinServerVersion(), candidates)
	return "", ""
}

// TestOldServerRefusedWithOneMessage runs jetfleet against Debian's
// nats-server 2.9: every command refuses at once with one message that
// names the server's version and the version needed, and nothing is
// created on the server (no stream without its subject transform, no
// bucket); the supervisor exits instead of retrying forever.
func TestOldServerRefusedWithOneMessage(t *testing.T) {
	t.Parallel()
	bin, version := oldNATSServer(t)
	port := embeddedtest.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	srv := exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-sd", t.TempDir())
	out := newSyncBuffer()
	srv.Stdout, srv.Stderr = out, out
	require.NoError(t, srv.Start())
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("nats-server %s:\n%s", version, out.String())
		}
	})
	var nc *nats.Conn
	embeddedtest.WaitFor(t, 10*time.Second, "nats-server "+version+" up", func() bool {
		c, err := nats.Connect(url)
		if err != nil {
			return false
		}
		nc = c
		return true
	})
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)

	env := []string{"NATS_URL=" + url}
	file := t.TempDir() + "/orders.ndjson"
	require.NoError(t, os.WriteFile(file, []byte(`{"order_id":"o-1","amount":1}`+"\n"), 0o600))
	want := fmt.Sprintf("nats-server %s at %s is too old for jetfleet: it needs %s or newer", version, url, subjects.MinServerVersion())
	for _, args := range [][]string{
		{"supervisor", "--http", ""},
		{"worker", "--pipeline", passthrough, "validate"},
		{"status"},
		{"publish", "--file", file, "jf.ingest.orders"},
	} {
		outText, code := jf(t, env, args...)
		require.Equal(t, 1, code, "jetfleet %v: %s", args, outText)
		require.Contains(t, outText, want, "jetfleet %v", args)
		require.Contains(t, outText, "per-message TTLs", "jetfleet %v names what is missing", args)
		require.NotContains(t, outText, "conflicts", "jetfleet %v", args)
	}

	// The Go API refuses too, before it creates anything; its error stops
	// whoever stops on a stream conflict (the worker runtime).
	err = subjects.Ensure(t.Context(), js, subjects.StreamOptions{})
	require.ErrorIs(t, err, subjects.ErrServerTooOld)
	require.ErrorIs(t, err, subjects.ErrStreamConflict)
	var tooOld *subjects.ServerTooOldError
	require.ErrorAs(t, err, &tooOld)
	require.Equal(t, version, tooOld.Version)
	_, err = subjects.EnsureKV(t.Context(), js, subjects.FleetKV(subjects.StreamOptions{}), subjects.StreamOptions{})
	require.ErrorIs(t, err, subjects.ErrServerTooOld)

	names := js.StreamNames(t.Context())
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	require.NoError(t, names.Err())
	require.Empty(t, streams, "nothing created on a server too old for the contract")
}
