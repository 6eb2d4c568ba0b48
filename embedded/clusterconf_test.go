package embedded_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// TestClusterConfigsParse: the three-machine configs of scripts/cluster
// parse (as nats-server 2.10+ and our embedded server read them) and
// describe one JetStream cluster of three distinct nodes routed to each
// other.
func TestClusterConfigsParse(t *testing.T) {
	t.Parallel()
	names := map[string]bool{}
	for _, n := range []string{"n1", "n2", "n3"} {
		opts, err := server.ProcessConfigFile(filepath.Join("..", "scripts", "cluster", n+".conf"))
		require.NoError(t, err, n)
		require.Equal(t, n, opts.ServerName)
		require.True(t, opts.JetStream, n)
		require.Equal(t, "/var/lib/jetfleet/nats", opts.StoreDir, n)
		require.Equal(t, "0.0.0.0", opts.Host, n)
		require.Equal(t, 4222, opts.Port, n)
		require.Equal(t, 8222, opts.HTTPPort, n)
		require.Equal(t, int32(8<<20), opts.MaxPayload, n)
		require.Equal(t, "jetfleet", opts.Cluster.Name, n)
		require.Equal(t, 6222, opts.Cluster.Port, n)
		var routes []string
		for _, r := range opts.Routes {
			routes = append(routes, r.Host)
		}
		require.Equal(t, []string{"nats-1:6222", "nats-2:6222", "nats-3:6222"}, routes, n)
		names[opts.ServerName] = true
	}
	require.Len(t, names, 3)
}

// TestLocalClusterConfigs: the configs scripts/cluster/local.sh writes
// start a 3-node JetStream cluster through embedded.Start (the code
// behind `jetfleet dev --nats-config`), and it stores a 3-replica stream.
func TestLocalClusterConfigs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	dir := t.TempDir()
	// Clients at base+i, routes at +2000, monitoring at +4000, as local.sh
	// lays them out.
	base := embeddedtest.FreePortBlock(t, 0, 1, 2, 2000, 2001, 2002, 4000, 4001, 4002)
	cmd := exec.Command("bash", filepath.Join("..", "scripts", "cluster", "local.sh"), "configs")
	cmd.Env = append(os.Environ(), "JF_CLUSTER_DIR="+dir, "JF_CLUSTER_PORT="+strconv.Itoa(base))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	confs := strings.Fields(string(out))
	require.Len(t, confs, 3)

	errs := make(chan error, 3)
	servers := make([]*embedded.Server, 3)
	for i, conf := range confs {
		go func() {
			srv, err := embedded.Start(embedded.Config{ConfigFile: conf, StoreDir: filepath.Join(dir, "store"+strconv.Itoa(i)), Quiet: true, ReadyTimeout: 30 * time.Second})
			servers[i] = srv
			errs <- err
		}()
	}
	for range confs {
		require.NoError(t, <-errs)
	}
	var urls []string
	for i, srv := range servers {
		t.Cleanup(srv.Shutdown)
		require.Equal(t, "n"+strconv.Itoa(i+1), srv.Name())
		urls = append(urls, srv.ClientURL())
	}
	require.Equal(t, "nats://127.0.0.1:"+strconv.Itoa(base), urls[0])
	nc, err := nats.Connect(strings.Join(urls, ","))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	// Polled: the meta leader's election sends no event to clients.
	embeddedtest.CheckFor(t, 30*time.Second, 100*time.Millisecond, func() error {
		_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
		return err
	})
	_, err = js.Publish(t.Context(), "r3.x", []byte("hi"))
	require.NoError(t, err)
}
