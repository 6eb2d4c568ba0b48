package main_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// tlsUsersBundle is a server with TLS and two users: admin, who may do
// anything, and pub, who may publish to jf.ingest.> only and receive
// replies on _INBOX_pub.> only (as the publisher role of a locked-down
// set-up).
type tlsUsersBundle struct {
	url       string
	ca        string
	cert, key string
	adminPW   string
	pubPW     string
	dir       string
}

func setupTLSUsers(t *testing.T) *tlsUsersBundle {
	t.Helper()
	dir := t.TempDir()
	b := &tlsUsersBundle{dir: dir, adminPW: "admin-" + fmt.Sprint(time.Now().UnixNano()), pubPW: "pub-" + fmt.Sprint(time.Now().UnixNano())}
	b.ca, b.cert, b.key = writeCerts(t, dir)
	hash := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		require.NoError(t, err)
		return string(h)
	}
	conf := fmt.Sprintf(`
tls { cert_file: %q, key_file: %q, ca_file: %q }
authorization {
  users: [
    { user: admin, password: %q }
    { user: pub, password: %q, permissions: {
        publish: { allow: ["jf.ingest.>"] }
        subscribe: { allow: ["_INBOX_pub.>"] }
    } }
  ]
}
`, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), b.ca, hash(b.adminPW), hash(b.pubPW))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nats.conf"), []byte(conf), 0o600))
	srv, err := embedded.Start(embedded.Config{StoreDir: filepath.Join(dir, "store"), ConfigFile: filepath.Join(dir, "nats.conf"), Host: "127.0.0.1", Port: -1, Quiet: true, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	b.url = fmt.Sprintf("tls://127.0.0.1:%d", srv.Addr().(*net.TCPAddr).Port)

	nc, err := nats.Connect(b.url, nats.UserInfo("admin", b.adminPW), nats.RootCAs(b.ca))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	return b
}

// env is the environment of a process of user pub, with its inbox prefix.
func (b *tlsUsersBundle) env(extra ...string) []string {
	return append([]string{"NATS_URL=" + b.url, "NATS_USER=pub", "NATS_PASSWORD=" + b.pubPW, "NATS_CA=" + b.ca, "NATS_INBOX_PREFIX=_INBOX_pub"}, extra...)
}

func (b *tlsUsersBundle) ordersFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	require.NoError(t, os.WriteFile(path, []byte(shopOrder("p-1", "c-1")+"\n"), 0o600))
	return path
}

// TestPublishRefusedSaysSoAtOnce: a publish the server refuses is not
// answered at all; the server only sends an async error. publish used to
// print "published 1 records" and fail 30s later on an ack timeout.
func TestPublishRefusedSaysSoAtOnce(t *testing.T) {
	t.Parallel()
	b := setupTLSUsers(t)
	file := b.ordersFile(t)

	t.Run("subject not allowed", func(t *testing.T) {
		t.Parallel()
		began := time.Now()
		out, code := jf(t, b.env(), "publish", "--file", file, "jf.valid.orders")
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "permission denied for subject jf.valid.orders")
		require.NotContains(t, out, "published 1 records", "a refused publish must not look like success")
		require.Less(t, time.Since(began), 4*time.Second, "at once, not after an ack timeout")
	})
	t.Run("no inbox prefix", func(t *testing.T) {
		t.Parallel()
		began := time.Now()
		out, code := jf(t, b.env("NATS_INBOX_PREFIX="), "publish", "--file", file, "jf.ingest.orders")
		require.Equal(t, 1, code, out)
		require.Contains(t, out, "no permission on the reply inbox _INBOX.")
		require.Contains(t, out, "set --inbox-prefix")
		require.Less(t, time.Since(began), 4*time.Second, "at once, not after an ack timeout")
	})
	t.Run("allowed", func(t *testing.T) {
		t.Parallel()
		out, code := jf(t, b.env(), "publish", "--file", file, "--id-field", "order_id", "jf.ingest.orders")
		require.Zero(t, code, out)
		require.Contains(t, out, "published 1 records")
	})
}

// TestConnectErrorsNameTheCause: a connection refused for TLS or
// authorization says why, and only an unreachable server gets the hint
// about starting one. A worker logs the cause while it retries, once per
// cause rather than once per try.
func TestConnectErrorsNameTheCause(t *testing.T) {
	t.Parallel()
	b := setupTLSUsers(t)
	dead := fmt.Sprintf("nats://127.0.0.1:%d", embeddedtest.FreePort(t))
	const hint = "is `jetfleet dev` or a nats-server running?"
	for _, tc := range []struct {
		name  string
		env   []string
		want  string
		hint  bool
		retry bool // a worker's cause line
		// exits: the client gives the connection up (it does after
		// repeated authorization errors) and the worker ends, naming why.
		exits bool
	}{
		{"wrong password", b.env("NATS_PASSWORD=wrong"), "authorization violation", false, true, true},
		{"no CA", b.env("NATS_CA="), "x509: certificate signed by unknown authority", false, true, false},
		{"unreachable", b.env("NATS_URL=" + dead), "cannot reach NATS at " + dead, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, code := jf(t, tc.env, "status")
			require.Equal(t, 1, code, out)
			require.Contains(t, out, tc.want)
			if tc.hint {
				require.Contains(t, out, hint)
			} else {
				require.NotContains(t, out, hint, "the hint is wrong for TLS and authorization errors")
				require.Contains(t, out, "cannot connect to NATS at "+b.url)
			}
			if !tc.retry {
				return
			}
			w := start(t, tc.env, "worker", "--log-format", "json", "validate")
			embeddedtest.WaitFor(t, 30*time.Second, "the cause in the worker's log", func() bool { return strings.Contains(w.out.String(), tc.want) })
			if tc.exits {
				select {
				case err := <-w.done:
					w.done <- err
					require.Error(t, err, "a worker whose connection was given up exits non-zero")
				case <-time.After(time.Minute):
					t.Fatalf("the worker runs on a connection the client gave up:\n%s", w.out.String())
				}
				require.Contains(t, w.out.String(), "the NATS client gave the connection up: ")
				require.Contains(t, w.out.String(), tc.want)
				return
			}
			// Several more tries go by; the cause has not changed.
			embeddedtest.WaitFor(t, 30*time.Second, "more connection attempts", func() bool { return strings.Count(w.out.String(), "waiting for JetStream") >= 3 })
			lines := 0
			for _, l := range strings.Split(w.out.String(), "\n") {
				if strings.Contains(l, "cannot connect to NATS") && strings.Contains(l, tc.want) {
					lines++
				}
			}
			require.LessOrEqual(t, lines, 2, "the cause is logged when it changes, not on every try:\n%s", w.out.String())
			require.GreaterOrEqual(t, lines, 1)
			require.NotContains(t, w.out.String(), hint)
			require.NoError(t, w.cmd.Process.Signal(syscall.SIGTERM))
		})
	}
}

// TestPasswordFile: the password can come from a file (or
// NATS_PASSWORD_FILE), out of ps; giving it twice is a usage error.
func TestPasswordFile(t *testing.T) {
	t.Parallel()
	b := setupTLSUsers(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	require.NoError(t, os.WriteFile(pwFile, []byte(b.pubPW+"\n"), 0o600))
	file := b.ordersFile(t)

	out, code := jf(t, b.env("NATS_PASSWORD="), "publish", "--password-file", pwFile, "--file", file, "jf.ingest.orders")
	require.Zero(t, code, out)
	out, code = jf(t, b.env("NATS_PASSWORD=", "NATS_PASSWORD_FILE="+pwFile), "publish", "--file", file, "jf.ingest.orders")
	require.Zero(t, code, out)
	require.Contains(t, out, "1 duplicates", "the same record, stored once")

	out, code = jf(t, b.env(), "publish", "--password-file", pwFile, "--file", file, "jf.ingest.orders")
	require.Equal(t, 2, code, "password twice: %s", out)
	out, code = jf(t, b.env("NATS_PASSWORD="), "publish", "--password-file", filepath.Join(t.TempDir(), "missing"), "--file", file, "jf.ingest.orders")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "--password-file")

	// Every command with connection flags has it.
	for _, cmd := range [][]string{{"worker"}, {"supervisor"}, {"status"}, {"dlq", "ls"}, {"ctl", "pause"}, {"lookup", "load"}, {"alerts", "tail"}, {"publish"}} {
		help, code := jf(t, nil, append(cmd, "--help")...)
		require.Zero(t, code, help)
		require.Contains(t, help, "--password-file", cmd)
	}
}
