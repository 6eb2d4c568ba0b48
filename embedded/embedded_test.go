package embedded_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

func TestNATSConfParses(t *testing.T) {
	t.Parallel()
	opts, err := server.ProcessConfigFile(filepath.Join("..", "nats.conf"))
	require.NoError(t, err)
	require.True(t, opts.JetStream, "nats.conf must enable JetStream")
	require.Equal(t, "127.0.0.1", opts.Host, "the dev server listens on loopback only")
	// Chosen, not inherited: see the comment in nats.conf and docs/guarantees.md.
	require.False(t, opts.SyncAlways)
	require.Equal(t, time.Second, opts.SyncInterval)
}

func TestStartServesJetStream(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	nc, err := nats.Connect(srv.ClientURL())
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.JetStream()
	require.NoError(t, err)
	require.True(t, srv.JetStreamEnabled())
	srv.Shutdown()
	srv.Shutdown() // idempotent
}

func TestStartFailsFastOnBadInput(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() }) // subtests run after this function returns
	busy := l.Addr().(*net.TCPAddr).Port

	badConf := filepath.Join(t.TempDir(), "bad.conf")
	require.NoError(t, os.WriteFile(badConf, []byte("listen: 127.0.0.1:4222\njetstream {\n  store_dir: \n"), 0o600))

	readOnly := filepath.Join(t.TempDir(), "ro")
	require.NoError(t, os.Mkdir(readOnly, 0o500))
	// A data dir below a regular file cannot be created, even by root.
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))

	tests := []struct {
		name string
		cfg  embedded.Config
		want string
	}{
		{"port in use", embedded.Config{StoreDir: t.TempDir(), Port: busy, Quiet: true}, "address already in use"},
		{"bad config file", embedded.Config{StoreDir: t.TempDir(), ConfigFile: badConf, Quiet: true}, "bad.conf"},
		{"missing config file", embedded.Config{StoreDir: t.TempDir(), ConfigFile: "/nonexistent/nats.conf", Quiet: true}, "nats.conf"},
		{"not loopback", embedded.Config{StoreDir: t.TempDir(), Host: "0.0.0.0", Quiet: true}, "loopback"},
		{"no store", embedded.Config{Quiet: true}, "store"},
		{"data dir below a file", embedded.Config{StoreDir: filepath.Join(notDir, "nats"), Port: -1, Quiet: true}, "data dir"},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		tests = append(tests, struct {
			name string
			cfg  embedded.Config
			want string
		}{"unwritable data dir", embedded.Config{StoreDir: filepath.Join(readOnly, "nats"), Port: -1, Quiet: true}, "data dir"})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			_, err := embedded.Start(tt.cfg)
			require.ErrorIs(t, err, embedded.ErrInvalidConfig)
			require.Contains(t, err.Error(), tt.want)
			require.Less(t, time.Since(start), 2*time.Second, "bad input must fail fast")
		})
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster start takes seconds")
	}
	c, err := embedded.StartCluster("jftest", 3, t.TempDir(), zerolog.New(zerolog.NewTestWriter(t)), true)
	require.NoError(t, err)
	defer c.Shutdown()
	require.Len(t, c.Servers, 3)
	nc, err := nats.Connect(c.ClientURLs())
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	// A replicated stream needs the meta leader; retry until it is elected
	// (polled: an election sends no event to clients).
	embeddedtest.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		_, err := js.AddStream(&nats.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err
	})
	_, err = js.Publish("r3.x", []byte("hi"))
	require.NoError(t, err)
}

// TestStartClusterFromConfigFiles starts nodes from nats-server config
// files alone, as `jetfleet server --config n1.conf` does: the cluster
// block, server name and store_dir all come from the file.
func TestStartClusterFromConfigFiles(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("cluster start takes seconds")
	}
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	const n = 3
	routes := make([]int, n)
	for i := range routes {
		routes[i] = free()
	}
	dir := t.TempDir()
	files := make([]string, n)
	for i := range n {
		conf := fmt.Sprintf(`server_name: n%d
listen: 127.0.0.1:%d
jetstream { store_dir: %q }
cluster {
  name: jfconf
  listen: 127.0.0.1:%d
  routes: [nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d, nats-route://127.0.0.1:%d]
}
`, i+1, free(), filepath.Join(dir, fmt.Sprintf("n%d", i+1)), routes[i], routes[0], routes[1], routes[2])
		files[i] = filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1))
		require.NoError(t, os.WriteFile(files[i], []byte(conf), 0o600))
	}
	servers := make([]*embedded.Server, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			var err error
			servers[i], err = embedded.Start(embedded.Config{ConfigFile: files[i], Quiet: true, ReadyTimeout: 30 * time.Second})
			errs <- err
		}()
	}
	for range n {
		require.NoError(t, <-errs)
	}
	urls := make([]string, n)
	for i, s := range servers {
		t.Cleanup(s.Shutdown)
		require.Equal(t, "jfconf", s.ClusterName())
		require.Equal(t, filepath.Join(dir, fmt.Sprintf("n%d", i+1)), s.StoreDir())
		urls[i] = s.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	require.NoError(t, err)
	defer nc.Close()
	js, err := nc.JetStream()
	require.NoError(t, err)
	embeddedtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, err := js.AddStream(&nats.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err
	})
}
