package embedded

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/rs/zerolog"
)

// Cluster is a set of embedded servers routed into one JetStream cluster.
type Cluster struct {
	Servers []*Server
	cfgs    []Config
}

// StartCluster starts n servers on loopback, each with its store under
// baseDir/nodeI, routed into one JetStream cluster named name. It returns
// once every node accepts clients and the cluster has a meta leader.
func StartCluster(name string, n int, baseDir string, log zerolog.Logger, quiet bool) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("%w: cluster of %d nodes", ErrInvalidConfig, n)
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	routes := make([]string, n)
	for i, p := range ports {
		routes[i] = "nats-route://127.0.0.1:" + strconv.Itoa(p)
	}
	c := &Cluster{}
	for i := range n {
		cfg := Config{
			StoreDir:   filepath.Join(baseDir, "node"+strconv.Itoa(i)),
			Host:       "127.0.0.1",
			Port:       -1,
			ServerName: name + "-" + strconv.Itoa(i),
			Cluster:    &ClusterConfig{Name: name, Host: "127.0.0.1", Port: ports[i], Routes: routes},
			Logger:     log,
			Quiet:      quiet,
			// A node waits for its peers before JetStream is up.
			ReadyTimeout: 20 * time.Second,
		}
		c.cfgs = append(c.cfgs, cfg)
	}
	errs := make(chan error, n)
	servers := make([]*Server, n)
	for i := range n {
		go func() {
			s, err := Start(c.cfgs[i])
			servers[i] = s
			errs <- err
		}()
	}
	var firstErr error
	for range n {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	c.Servers = servers
	if firstErr != nil {
		c.Shutdown()
		return nil, firstErr
	}
	return c, nil
}

// ClientURLs lists every node's client URL, comma-separated, for nats.Connect.
func (c *Cluster) ClientURLs() string {
	s := ""
	for i, srv := range c.Servers {
		if srv == nil {
			continue
		}
		if i > 0 {
			s += ","
		}
		s += srv.ClientURL()
	}
	return s
}

// Shutdown stops every node.
func (c *Cluster) Shutdown() {
	for _, s := range c.Servers {
		if s != nil {
			s.Shutdown()
		}
	}
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
