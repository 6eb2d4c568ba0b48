package embedded

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"
)

// Config says how to start one embedded server.
type Config struct {
	// StoreDir holds the JetStream store; created if missing. Required
	// unless ConfigFile sets jetstream.store_dir.
	StoreDir string
	// ConfigFile is a nats-server config file. Empty means the built-in
	// nats.conf. Fields set below override the file.
	ConfigFile string
	// Host to listen on. Default: the config's, else 127.0.0.1. Must be a
	// loopback address unless AllowRemote is set.
	Host string
	// Port to listen on; -1 picks a free one. 0 keeps the config's port.
	Port int
	// AllowRemote lets Host be a non-loopback address.
	AllowRemote bool
	// ServerName names the server; needed to tell cluster nodes apart.
	ServerName string
	// Cluster, when set, makes the server a node of a JetStream cluster.
	Cluster *ClusterConfig
	// ReadyTimeout bounds the wait for the server to accept clients. Default 5s.
	ReadyTimeout time.Duration
	// Logger receives the server's log lines. Quiet drops them.
	Logger zerolog.Logger
	Quiet  bool
	// SyncAlways makes JetStream fsync every write (slower, survives power loss).
	SyncAlways bool
	// SyncInterval is how often JetStream fsyncs in the background; 0 keeps
	// the config's (nats-server's default is 2m).
	SyncInterval time.Duration
	// LameDuckDuration is how long LameDuckShutdown spreads client
	// disconnects over; 0 keeps the config's.
	LameDuckDuration time.Duration
}

// ClusterConfig joins a server to a cluster by routes.
type ClusterConfig struct {
	Name   string
	Host   string
	Port   int
	Routes []string // nats-route://host:port of every node, itself included
}

// Server is a running embedded nats-server.
type Server struct {
	*server.Server
	opts     *server.Options
	shutdown sync.Once
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	opts, err := options(cfg)
	if err != nil {
		return nil, err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if !cfg.Quiet {
		ns.SetLoggerV2(serverLogger{cfg.Logger.With().Str("component", "nats-server").Logger()}, false, false, false)
	}
	go ns.Start()
	timeout := cfg.ReadyTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if !ns.ReadyForConnections(timeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: not accepting connections on %s:%d after %s", ErrNotReady, opts.Host, opts.Port, timeout)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("%w: JetStream did not start (store %s)", ErrNotReady, opts.StoreDir)
	}
	return &Server{Server: ns, opts: opts}, nil
}

// Shutdown stops the server and waits until it is down. Safe to call twice.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		s.Server.Shutdown()
		s.WaitForShutdown()
	})
}

// StoreDir is where this server keeps JetStream data.
func (s *Server) StoreDir() string { return s.opts.StoreDir }

func options(cfg Config) (*server.Options, error) {
	opts := &server.Options{}
	if cfg.ConfigFile != "" {
		if err := opts.ProcessConfigFile(cfg.ConfigFile); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidConfig, cfg.ConfigFile, err)
		}
	} else if err := opts.ProcessConfigString(natsConf); err != nil {
		return nil, fmt.Errorf("%w: built-in nats.conf: %v", ErrInvalidConfig, err)
	}
	opts.JetStream = true
	switch {
	case cfg.StoreDir != "":
		opts.StoreDir = absStore(cfg.StoreDir)
	case cfg.ConfigFile == "" || opts.StoreDir == "":
		// The built-in nats.conf's store_dir is relative to whatever the
		// working directory is: callers say where the store goes.
		return nil, fmt.Errorf("%w: no store directory", ErrInvalidConfig)
	default:
		opts.StoreDir = absStore(opts.StoreDir)
	}
	opts.SyncAlways = opts.SyncAlways || cfg.SyncAlways
	if cfg.SyncInterval > 0 {
		opts.SyncInterval = cfg.SyncInterval
	}
	if cfg.LameDuckDuration > 0 {
		opts.LameDuckDuration = cfg.LameDuckDuration
	}
	opts.NoSigs = true // signals belong to cmd/, which drains the fleet first
	if cfg.Host != "" {
		opts.Host = cfg.Host
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if !cfg.AllowRemote && !isLoopback(opts.Host) {
		return nil, fmt.Errorf("%w: listen host %s is not a loopback address (the dev server is for this machine only)", ErrInvalidConfig, opts.Host)
	}
	switch {
	case cfg.Port == -1:
		opts.Port = server.RANDOM_PORT
	case cfg.Port > 0:
		opts.Port = cfg.Port
	case opts.Port == 0:
		opts.Port = server.DEFAULT_PORT
	}
	if cfg.ServerName != "" {
		opts.ServerName = cfg.ServerName
	}
	if c := cfg.Cluster; c != nil {
		opts.Cluster.Name = c.Name
		opts.Cluster.Host = c.Host
		opts.Cluster.Port = c.Port
		opts.Routes = server.RoutesFromStr(joinRoutes(c.Routes))
	}
	if err := checkStoreDir(opts.StoreDir); err != nil {
		return nil, err
	}
	if opts.Port != server.RANDOM_PORT {
		if err := checkPortFree(opts.Host, opts.Port); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

func joinRoutes(routes []string) string {
	s := ""
	for i, r := range routes {
		if i > 0 {
			s += ","
		}
		s += r
	}
	return s
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkStoreDir fails fast on a store the server could not write; the
// server itself would only notice at the first stream write.
func checkStoreDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("%w: data dir: %v", ErrInvalidConfig, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("%w: data dir %s is not writable: %v", ErrInvalidConfig, dir, unwrapPathError(err))
	}
	name := f.Name()
	_ = f.Close()
	_ = os.Remove(name)
	return nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// checkPortFree fails fast on a taken port: nats-server would only log it
// and leave Start waiting for the readiness timeout.
func checkPortFree(host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%w: cannot listen on %s: %v (is another server running? pick another --listen port)", ErrInvalidConfig, addr, unwrapSyscall(err))
	}
	return l.Close()
}

func unwrapSyscall(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se *os.SyscallError
		if errors.As(oe.Err, &se) {
			return se.Err
		}
		return oe.Err
	}
	return err
}

// absStore makes relative store paths stable when the process changes dir.
func absStore(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

type serverLogger struct{ log zerolog.Logger }

func (l serverLogger) Noticef(format string, v ...any) { l.log.Debug().Msgf(format, v...) }
func (l serverLogger) Warnf(format string, v ...any)   { l.log.Warn().Msgf(format, v...) }
func (l serverLogger) Fatalf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Errorf(format string, v ...any)  { l.log.Error().Msgf(format, v...) }
func (l serverLogger) Debugf(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
func (l serverLogger) Tracef(format string, v ...any)  { l.log.Trace().Msgf(format, v...) }
