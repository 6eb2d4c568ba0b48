// Package metrics holds the Prometheus metrics a worker process records
// itself (handler latency), shared by the runtime and the HTTP handler
// in supervisor. Fleet-wide metrics (lag, dead letters, heartbeats) are
// collected from JetStream by supervisor.NewHandler at scrape time.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// HandlerSeconds is the time a step's handler took per message.
var HandlerSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "jetfleet_handler_seconds",
	Help:    "Time a step's handler took for one message.",
	Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
}, []string{"step", "dataset"})

// Collectors are this package's metrics, for registering on a registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{HandlerSeconds, AlertsFired, AlertsSuppressed, NativeMemory, ContractFields}
}
