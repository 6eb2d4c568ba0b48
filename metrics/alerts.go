package metrics

import "github.com/prometheus/client_golang/prometheus"

// Alert decisions made in this process: fired alerts and matches a
// cooldown held back (reported as suppressed in the next alert).
var (
	AlertsFired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetfleet_alerts_fired_total",
		Help: "Alerts fired by a rule (a redelivered input firing again with the same id counts again).",
	}, []string{"rule", "severity"})
	AlertsSuppressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "jetfleet_alerts_suppressed_total",
		Help: "Matches of a rule held back by its cooldown.",
	}, []string{"rule"})
)
