package embeddedtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded"
)

// nodeEnv tells a test binary started by [StartNodes] to be a cluster
// node: its value is the node's config file.
const nodeEnv = "JETFLEET_TEST_NODE_CONFIG"

// RunNodeIfAsked makes this process a nats-server cluster node when
// [StartNodes] started it: it serves until SIGTERM, then exits, and never
// returns. Call it first in TestMain of a package that uses StartNodes
// with the test binary itself.
func RunNodeIfAsked() {
	conf := os.Getenv(nodeEnv)
	if conf == "" {
		return
	}
	srv, err := embedded.Start(embedded.Config{ConfigFile: conf, Quiet: os.Getenv("NATS_LOGGING") != "debug", ReadyTimeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stdout, "node ready", srv.ClientURL()) // to the parent, which waits for this line
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
	srv.Shutdown()
	os.Exit(0)
}

// NodesConfig says how [StartNodes] runs its nodes.
type NodesConfig struct {
	// N is the number of nodes. Default 3.
	N int
	// Command runs one node, its config file appended as the last
	// argument: {"/path/jetfleet", "server", "--config"}. Default: this
	// test binary, which must call [RunNodeIfAsked] in TestMain.
	Command []string
}

// Nodes is a JetStream cluster on loopback whose nodes are processes of
// their own, so a test can SIGKILL one as a crash would.
type Nodes struct {
	Nodes []*Node
	cmd   []string
}

// Node is one node process of [Nodes].
type Node struct {
	// Name is the node's server_name (n1, n2, ...).
	Name string
	// URL is its client URL; it stays the same across restarts.
	URL string
	// Monitor is its monitoring base URL (http://127.0.0.1:port).
	Monitor string

	conf string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *strings.Builder
}

// StartNodes starts a cluster of processes, each with its store in a
// temp dir, and returns once every node reports healthy (JetStream up
// and current). The nodes are killed when the test ends.
func StartNodes(t testing.TB, cfg NodesConfig) *Nodes {
	t.Helper()
	if cfg.N <= 0 {
		cfg.N = 3
	}
	if len(cfg.Command) == 0 {
		cfg.Command = []string{os.Args[0]}
	}
	dir := t.TempDir()
	ports := FreePorts(t, 3*cfg.N)
	routes := make([]string, cfg.N)
	for i := range cfg.N {
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[3*i+1])
	}
	c := &Nodes{cmd: cfg.Command}
	for i := range cfg.N {
		n := &Node{
			Name:    fmt.Sprintf("n%d", i+1),
			URL:     fmt.Sprintf("nats://127.0.0.1:%d", ports[3*i]),
			Monitor: fmt.Sprintf("http://127.0.0.1:%d", ports[3*i+2]),
			conf:    filepath.Join(dir, fmt.Sprintf("n%d.conf", i+1)),
		}
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
max_payload: 8MB
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 1GB }
cluster {
  name: jf-test
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, n.Name, ports[3*i], ports[3*i+2], filepath.Join(dir, n.Name), ports[3*i+1], strings.Join(routes, ", "))
		require.NoError(t, os.WriteFile(n.conf, []byte(conf), 0o600))
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		c.start(t, n)
	}
	t.Cleanup(func() {
		for _, n := range c.Nodes {
			n.Kill()
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				t.Logf("output of node %s:\n%s", n.Name, n.output())
			}
		}
	})
	for _, n := range c.Nodes {
		c.WaitHealthy(t, n, time.Minute)
	}
	return c
}

func (c *Nodes) start(t testing.TB, n *Node) {
	t.Helper()
	cmd := exec.Command(c.cmd[0], append(c.cmd[1:], n.conf)...)
	cmd.Env = append(os.Environ(), nodeEnv+"="+n.conf)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: out, mu: &n.mu}, &lockedWriter{w: out, mu: &n.mu}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.mu.Lock()
	n.cmd, n.done, n.out = cmd, done, out
	n.mu.Unlock()
}

// ClientURLs lists every node's client URL, comma-separated.
func (c *Nodes) ClientURLs() string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return strings.Join(urls, ",")
}

// Node is the node named name (nil if none is).
func (c *Nodes) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// Restart starts a killed node again on its ports and store.
func (c *Nodes) Restart(t testing.TB, n *Node) {
	t.Helper()
	c.start(t, n)
}

// WaitHealthy waits until n's /healthz says JetStream is up and current,
// failing at once if the node's process exits, and after
// [Timeout](timeout) if it stays unhealthy.
func (c *Nodes) WaitHealthy(t testing.TB, n *Node, timeout time.Duration) {
	t.Helper()
	CheckFor(t, timeout, 50*time.Millisecond, func() error {
		select {
		case <-n.exited():
			require.FailNow(t, "node "+n.Name+" exited", n.output())
		default:
		}
		if !n.Healthy() {
			return fmt.Errorf("node %s not healthy", n.Name)
		}
		return nil
	})
}

// Kill sends SIGKILL and waits for the process to end: a crash, no
// leadership handed over.
func (n *Node) Kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Healthy reports whether the node answers /healthz with 200.
func (n *Node) Healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Monitor+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Jsz is the node's own view of JetStream with stream details: what its
// replica of each stream holds.
func (n *Node) Jsz(ctx context.Context) (*server.JSInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Monitor+"/jsz?accounts=true&streams=true", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var info server.JSInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		return nil, fmt.Errorf("jsz of %s: %w", n.Name, err)
	}
	return &info, nil
}

func (n *Node) exited() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.done
}

func (n *Node) output() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.out == nil {
		return ""
	}
	return n.out.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
