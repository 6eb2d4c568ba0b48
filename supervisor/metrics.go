package supervisor

import (
	"context"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/metrics"
)

// supMetrics are what the supervisor process itself counts.
type supMetrics struct {
	beats            prometheus.Counter
	transitions      *prometheus.CounterVec
	deadLettered     *prometheus.CounterVec
	deadLetterErrors prometheus.Counter
}

func newSupMetrics() *supMetrics {
	return &supMetrics{
		beats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetfleet_supervisor_heartbeats_total", Help: "Heartbeats folded into the fleet bucket.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_supervisor_liveness_transitions_total", Help: "Worker liveness transitions, by the liveness entered.",
		}, []string{"to"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "jetfleet_supervisor_dead_lettered_total", Help: "Messages the supervisor dead-lettered from JetStream advisories.",
		}, []string{"step", "dataset", "cause"}),
		deadLetterErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "jetfleet_supervisor_dead_letter_errors_total", Help: "Advisories the supervisor could not turn into dead letters.",
		}),
	}
}

// Collectors are the supervisor's own metrics, for a registry.
func (s *Supervisor) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.beats, s.metrics.transitions, s.metrics.deadLettered, s.metrics.deadLetterErrors}
}

// fleetCollector reports the fleet from a [Snapshot] taken per scrape.
type fleetCollector struct {
	snapshotFunc func(ctx context.Context) (*Status, error)
	timeout      time.Duration
	log          zerolog.Logger
}

var (
	lblStep    = []string{"step", "dataset"}
	lblWorker  = []string{"step", "dataset", "worker"}
	descUp     = prometheus.NewDesc("jetfleet_supervisor_up", "1 if a supervisor is running.", nil, nil)
	descHealth = prometheus.NewDesc("jetfleet_fleet_healthy", "1 if `jetfleet status` says healthy.", nil, nil)
	descScrape = prometheus.NewDesc("jetfleet_status_ok", "1 if the fleet status could be read from JetStream.", nil, nil)
	descPend   = prometheus.NewDesc("jetfleet_consumer_pending", "Consumer lag: messages not yet delivered.", lblStep, nil)
	descAckP   = prometheus.NewDesc("jetfleet_consumer_ack_pending", "Messages in flight: delivered, not yet acked.", lblStep, nil)
	descRedel  = prometheus.NewDesc("jetfleet_consumer_redelivered", "Messages redelivered and not yet acked.", lblStep, nil)
	descDLQ    = prometheus.NewDesc("jetfleet_dead_letters", "Dead letters stored for the step and dataset.", lblStep, nil)
	descRate   = prometheus.NewDesc("jetfleet_step_acked_per_minute", "Messages acked over the last minute.", lblStep, nil)
	descWorkN  = prometheus.NewDesc("jetfleet_workers", "Workers by liveness.", []string{"step", "dataset", "liveness"}, nil)
	descAge    = prometheus.NewDesc("jetfleet_worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat.", lblWorker, nil)
	descFlight = prometheus.NewDesc("jetfleet_worker_in_flight", "Messages the worker holds.", lblWorker, nil)
	descMsgs   = prometheus.NewDesc("jetfleet_worker_messages_total", "Messages received by the worker.", lblWorker, nil)
	descProc   = prometheus.NewDesc("jetfleet_worker_processed_total", "Records the worker handled successfully.", lblWorker, nil)
	descFail   = prometheus.NewDesc("jetfleet_worker_failed_total", "Messages the worker nak'ed for redelivery after a transient failure.", lblWorker, nil)
	descWDLQ   = prometheus.NewDesc("jetfleet_worker_dead_lettered_total", "Records the worker dead-lettered.", lblWorker, nil)
	descWRedel = prometheus.NewDesc("jetfleet_worker_redelivered_total", "Messages the worker received more than once.", lblWorker, nil)
	descCrash  = prometheus.NewDesc("jetfleet_worker_crashes_total", "Handler panics in the worker.", lblWorker, nil)
	descRows   = prometheus.NewDesc("jetfleet_mart_rows", "Rows in the mart.", []string{"mart"}, nil)
	descParts  = prometheus.NewDesc("jetfleet_mart_partitions", "Parquet partitions of the mart.", []string{"mart"}, nil)
	descFresh  = prometheus.NewDesc("jetfleet_mart_updated_timestamp_seconds", "When the mart was last written (Unix time).", []string{"mart"}, nil)
)

var allFleetDescs = []*prometheus.Desc{
	descUp, descHealth, descScrape, descPend, descAckP, descRedel, descDLQ, descRate, descWorkN, descAge, descFlight,
	descMsgs, descProc, descFail, descWDLQ, descWRedel, descCrash, descRows, descParts, descFresh,
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allFleetDescs {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st, err := c.snapshotFunc(ctx)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics: fleet status")
		ch <- prometheus.MustNewConstMetric(descScrape, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descScrape, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, b2f(st.Supervisor.Up))
	ch <- prometheus.MustNewConstMetric(descHealth, prometheus.GaugeValue, b2f(st.Healthy))
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v int64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	for _, s := range st.Steps {
		gauge(descPend, float64(s.Pending), s.Step, s.Dataset)
		gauge(descAckP, float64(s.AckPending), s.Step, s.Dataset)
		gauge(descRedel, float64(s.Redelivered), s.Step, s.Dataset)
		gauge(descDLQ, float64(s.DLQ), s.Step, s.Dataset)
		if s.PerMinute >= 0 {
			gauge(descRate, float64(s.PerMinute), s.Step, s.Dataset)
		}
		byLive := map[string]int{LivenessAlive: 0, LivenessStale: 0, LivenessDead: 0}
		for _, w := range s.Workers {
			byLive[w.Liveness]++
			if w.Liveness != LivenessAlive && w.Liveness != LivenessStale {
				continue
			}
			gauge(descAge, w.BeatAgeSec, s.Step, s.Dataset, w.ID)
			gauge(descFlight, float64(w.InFlight), s.Step, s.Dataset, w.ID)
			counter(descMsgs, w.Counters.Messages, s.Step, s.Dataset, w.ID)
			counter(descProc, w.Counters.Records, s.Step, s.Dataset, w.ID)
			counter(descFail, w.Counters.Retried, s.Step, s.Dataset, w.ID)
			counter(descWDLQ, w.Counters.DeadLettered, s.Step, s.Dataset, w.ID)
			counter(descWRedel, w.Counters.Redelivered, s.Step, s.Dataset, w.ID)
			counter(descCrash, w.Counters.Crashes, s.Step, s.Dataset, w.ID)
		}
		for l, n := range byLive {
			gauge(descWorkN, float64(n), s.Step, s.Dataset, l)
		}
	}
	for _, m := range st.Marts {
		gauge(descRows, float64(m.Rows), m.Name)
		gauge(descParts, float64(m.Partitions), m.Name)
		if !m.UpdatedAt.IsZero() {
			gauge(descFresh, float64(m.UpdatedAt.UnixMilli())/1000, m.Name)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// MetricNames lists every metric name /metrics can expose, histogram
// series included (_bucket, _sum, _count). The Grafana dashboard's test
// checks its queries against it.
func MetricNames() []string {
	cs := []prometheus.Collector{&fleetCollector{}}
	cs = append(cs, metrics.Collectors()...)
	sm := newSupMetrics()
	cs = append(cs, sm.beats, sm.transitions, sm.deadLettered, sm.deadLetterErrors)
	ch := make(chan *prometheus.Desc, 64)
	go func() {
		for _, c := range cs {
			c.Describe(ch)
		}
		close(ch)
	}()
	var names []string
	for d := range ch {
		s := d.String()
		i := strings.Index(s, `fqName: "`)
		if i < 0 {
			continue
		}
		s = s[i+len(`fqName: "`):]
		name := s[:strings.IndexByte(s, '"')]
		names = append(names, name)
		if name == "jetfleet_handler_seconds" { // the one histogram
			names = append(names, name+"_bucket", name+"_sum", name+"_count")
		}
	}
	return names
}
