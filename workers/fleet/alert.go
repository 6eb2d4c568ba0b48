package fleet

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/alert"
)

// alertMembers adds the alert step's workers (record rules of each
// dataset) and one webhook deliverer per target a rule names.
func (f *Fleet) alertMembers(datasets []*pipeline.Dataset) error {
	spec := f.cfg.Spec
	for _, ds := range datasets {
		if len(spec.AlertsOf(ds.Name, pipeline.AlertRecord)) == 0 {
			continue
		}
		newHandler := func() (workers.Handler, error) {
			js, err := jetstream.New(f.cfg.Conn)
			if err != nil {
				return nil, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return alert.NewStep(ctx, alert.StepConfig{JS: js, Spec: spec, Dataset: ds.Name, Streams: f.cfg.Streams, Logger: f.cfg.Logger})
		}
		if err := f.addWorkers(subjects.StepAlert, ds.Name, newHandler, nil); err != nil {
			return err
		}
	}
	for _, target := range spec.Webhooks {
		subs := alert.WebhookSubjects(spec, target.Name)
		if len(subs) == 0 {
			continue
		}
		h, err := alert.NewWebhook(alert.WebhookConfig{Target: target, Logger: f.cfg.Logger})
		if err != nil {
			return err
		}
		for i := range max(f.cfg.Replicas[subjects.StepAlert.Name], 1) {
			w, err := workers.New(workers.Config{
				Conn: f.cfg.Conn, Step: subjects.StepWebhook, Dataset: target.Name, FilterSubjects: subs,
				NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
				Version:        f.cfg.Version, Logger: f.cfg.Logger, QuietStart: f.cfg.QuietStart, HeartbeatInterval: f.cfg.HeartbeatInterval, Consumer: f.cfg.Consumer, Streams: f.cfg.Streams,
				RetryBackoffMin: f.cfg.WebhookBackoffMin,
			})
			if err != nil {
				return err
			}
			f.Members = append(f.Members, Member{Name: fmt.Sprintf("%s/%s#%d", subjects.StepWebhook.Name, target.Name, i+1), Worker: w})
		}
	}
	return nil
}

// martRules builds the evaluator of the mart and anomaly rules on ds's
// marts, nil when there are none. It runs beside ds's aggregator.
func (f *Fleet) martRules(ds *pipeline.Dataset) (*alert.MartRules, error) {
	js, err := jetstream.New(f.cfg.Conn)
	if err != nil {
		return nil, err
	}
	mr, err := alert.NewMartRules(alert.MartRulesConfig{JS: js, Spec: f.cfg.Spec, Dataset: ds.Name, DataDir: f.cfg.DataDir, Streams: f.cfg.Streams, Logger: f.cfg.Logger})
	if err != nil || mr.Rules() == 0 {
		return nil, err
	}
	return mr, nil
}

// runMartRules runs rules (if any) until the returned func is called; it
// waits for them to finish, after the aggregator's final flush.
func runMartRules(ctx context.Context, rules *alert.MartRules) (stop func()) {
	if rules == nil {
		return func() {}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rules.Run(rctx) // retries by itself; returns nil when cancelled
	}()
	return func() {
		cancel()
		<-done
	}
}

// CheckAlerts compiles the SQL of spec's mart rules in DuckDB against
// tables shaped like their marts, so a bad rule fails at check time with
// its file, line and column. Run CheckMarts first.
func CheckAlerts(spec *pipeline.Spec) error {
	var queries []aggregate.MartQuery
	var rules []*pipeline.AlertRule
	for _, a := range spec.Alerts {
		if a.Kind == pipeline.AlertMart {
			queries = append(queries, aggregate.MartQuery{Name: a.Name, SQL: a.SQL})
			rules = append(rules, a)
		}
	}
	if len(queries) == 0 {
		return nil
	}
	var datasets []aggregate.DatasetConfig
	var ms []aggregate.Mart
	for _, ds := range spec.Datasets {
		datasets = append(datasets, DatasetConfig(ds))
		ms = append(ms, martsOf(spec, ds.Name)...)
	}
	errs, err := aggregate.CheckMartQueries(datasets, ms, queries)
	if err != nil {
		return err
	}
	var out []error
	for i, e := range errs {
		if e != nil {
			out = append(out, &pipeline.FieldError{Pos: rules[i].SQLPos, Field: "alerts." + rules[i].Name + ".sql", Msg: "does not compile over mart " + rules[i].Mart + ": " + oneLine(e.Error())})
		}
	}
	return errors.Join(out...)
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
