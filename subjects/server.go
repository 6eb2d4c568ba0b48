package subjects

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
)

// ServerFeature is a server capability the wire contract relies on, with
// the nats-server release that brought it.
type ServerFeature struct {
	Name  string
	Since [3]int
}

// ServerFeatures are what the contract needs of nats-server. An older
// server accepts some of these settings with only a warning (a stream
// created without its subject transform), so jetfleet checks the version
// before it creates anything rather than trusting the server to refuse.
var ServerFeatures = []ServerFeature{
	{Name: "stream subject transforms (JF_CLEAN's key partitions)", Since: [3]int{2, 10, 0}},
	{Name: "consumer metadata (jf.step, jf.dataset)", Since: [3]int{2, 10, 0}},
	{Name: "per-message TTLs (the fleet bucket's heartbeat keys)", Since: [3]int{2, 11, 0}},
}

// MinServerVersion is the oldest nats-server that has every feature in
// [ServerFeatures].
func MinServerVersion() string {
	var v [3]int
	for _, f := range ServerFeatures {
		if less(v, f.Since) {
			v = f.Since
		}
	}
	return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2])
}

// ServerTooOldError is a connected server older than [MinServerVersion].
// It matches [ErrServerTooOld] and also [ErrStreamConflict]: whoever stops
// retrying on a stream conflict (the worker runtime does) must stop here
// too, since retrying cannot help either.
type ServerTooOldError struct {
	Server  string // the server's URL, with its name when it has one
	Version string
	Missing []string // the features it lacks
}

func (e *ServerTooOldError) Error() string {
	return fmt.Sprintf("nats-server %s at %s is too old for jetfleet: it needs %s or newer (missing %s); nothing was created on it",
		e.Version, e.Server, MinServerVersion(), strings.Join(e.Missing, ", "))
}

// Is matches ErrServerTooOld and ErrStreamConflict.
func (e *ServerTooOldError) Is(target error) bool {
	return target == ErrServerTooOld || target == ErrStreamConflict
}

// CheckServer refuses a server that lacks a feature of the contract. It
// reads the version from the INFO the client got when it connected (no
// request), so it costs nothing; while nc is not connected there is no
// version to check and it returns nil (the next call checks).
func CheckServer(nc *nats.Conn) error {
	if nc == nil {
		return nil
	}
	v := nc.ConnectedServerVersion()
	if v == "" {
		return nil
	}
	have, ok := parseVersion(v)
	if !ok {
		return nil // an unknown scheme: let the server answer for itself
	}
	var missing []string
	for _, f := range ServerFeatures {
		if less(have, f.Since) {
			missing = append(missing, fmt.Sprintf("%s (%d.%d)", f.Name, f.Since[0], f.Since[1]))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	where := nc.ConnectedUrlRedacted()
	if name := nc.ConnectedServerName(); name != "" && name != nc.ConnectedServerId() {
		where = name + " at " + where // a named cluster node
	}
	return &ServerTooOldError{Server: where, Version: v, Missing: missing}
}

// parseVersion reads "2.9.10", "v2.11.0-beta.1" or "2.12" as a triple.
func parseVersion(s string) ([3]int, bool) {
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexAny(s, "-+ "); i >= 0 {
		s = s[:i]
	}
	var v [3]int
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		v[i] = n
	}
	return v, true
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
