package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// StepConfig configures the record rules of one dataset.
type StepConfig struct {
	// JS reaches the alerts bucket. Required.
	JS jetstream.JetStream
	// Spec and Dataset select the rules: the record rules of Dataset.
	Spec    *pipeline.Spec
	Dataset string
	// Streams sets the alerts bucket's replicas.
	Streams subjects.StreamOptions
	Logger  zerolog.Logger
	// NowFunc stamps fired_at. Default time.Now.
	NowFunc func() time.Time
}

// Step evaluates a dataset's record rules on clean records. It is safe
// for concurrent use; its state is in the alerts bucket.
type Step struct {
	cfg   StepConfig
	rules []*pipeline.AlertRule
	cool  *cooldowns
	log   zerolog.Logger
}

// NewStep builds the handler of the alert step for cfg.Dataset. It
// creates the alerts bucket if it is missing.
func NewStep(ctx context.Context, cfg StepConfig) (*Step, error) {
	if cfg.JS == nil || cfg.Spec == nil {
		return nil, fmt.Errorf("%w: alert step needs JetStream and a pipeline", workers.ErrInvalidConfig)
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	kv, err := openAlertsKV(ctx, cfg.JS, cfg.Streams)
	if err != nil {
		return nil, err
	}
	return &Step{
		cfg: cfg, rules: cfg.Spec.AlertsOf(cfg.Dataset, pipeline.AlertRecord), cool: &cooldowns{kv: kv},
		log: cfg.Logger.With().Str("step", subjects.StepAlert.Name).Str("dataset", cfg.Dataset).Logger(),
	}, nil
}

// Handle evaluates every rule on the record and returns the alerts that
// fire. A rule that cannot be evaluated on a record (a null field
// compared with a number) does not fire, as a NULL comparison in SQL.
func (s *Step) Handle(ctx context.Context, rec workers.Record) ([]workers.Output, error) {
	f := fieldsPool.Get().(*pipeline.Fields)
	defer fieldsPool.Put(f)
	if err := f.Scan(rec.Data); err != nil {
		return nil, workers.Permanent(err)
	}
	env := f.Env()
	var r pipeline.Record // decoded only for a rule that fires
	var out []workers.Output
	for _, rule := range s.rules {
		v, err := expr.Run(rule.WhenProgram, env)
		if err != nil {
			s.log.Debug().Str("rule", rule.Name).Uint64("seq", rec.Seq).Str("error", firstLine(err.Error())).Msg("rule not evaluable on record")
			continue
		}
		if b, ok := v.(bool); !ok || !b {
			continue
		}
		key, err := evalKey(rule, env)
		if err != nil {
			s.log.Debug().Str("rule", rule.Name).Uint64("seq", rec.Seq).Str("error", firstLine(err.Error())).Msg("key not evaluable on record")
		}
		if r == nil {
			r = f.Record()
		}
		at := eventTime(r, rule.Time, rec.Published)
		id := subjects.AlertMsgID(rec.MsgID, rule.Name, rec.Index)
		d, err := s.cool.decide(ctx, rule.Name, key, id, at, rule.Cooldown)
		if err != nil {
			return nil, err // transient: the record is retried, the alert id stays the same
		}
		if !d.fire {
			continue
		}
		a := Alert{
			ID: id, Rule: rule.Name, Kind: rule.Kind, Severity: rule.Severity, Dataset: s.cfg.Dataset, Key: key,
			Time: at.UTC(), FiredAt: s.cfg.NowFunc().UTC(), Suppressed: d.suppressed,
			Message: render(rule, env, rule.Name+" fired on "+s.cfg.Dataset+" record "+fmt.Sprint(r[datasetKey(s.cfg.Spec, s.cfg.Dataset)])),
			Context: Context{Record: json.RawMessage(bytes.Clone(bytes.TrimSpace(rec.Data))), Subject: rec.Subject, Seq: rec.Seq, MsgID: rec.MsgID},
		}
		data, err := json.Marshal(a)
		if err != nil {
			return nil, workers.Permanent(fmt.Errorf("rule %s: encode alert: %w", rule.Name, err))
		}
		metrics.AlertsFired.WithLabelValues(rule.Name, rule.Severity).Inc()
		out = append(out, workers.Output{Subject: subjects.Alert(rule.Name), Data: data, MsgID: id})
	}
	return out, nil
}

// fieldsPool holds the scanners of records being evaluated: a record is
// taken apart in one pass (pipeline.Fields), not decoded with
// encoding/json, as validate and transform do.
var fieldsPool = sync.Pool{New: func() any { return new(pipeline.Fields) }}

func datasetKey(spec *pipeline.Spec, dataset string) string {
	if ds := spec.Dataset(dataset); ds != nil {
		return ds.Key
	}
	return ""
}

// evalKey is the rule's cooldown key for env, "" without a key.
func evalKey(rule *pipeline.AlertRule, env map[string]any) (string, error) {
	if rule.KeyProgram == nil {
		return "", nil
	}
	v, err := expr.Run(rule.KeyProgram, env)
	if err != nil {
		return "", err
	}
	return keyString(v), nil
}

func keyString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return fmt.Sprint(v)
}

// eventTime reads the record's time field (RFC 3339 text, as the
// transform step writes timestamps), or falls back to when JetStream
// stored the message: the same on every redelivery.
func eventTime(r pipeline.Record, field string, stored time.Time) time.Time {
	if field != "" {
		if s, ok := r[field].(string); ok {
			for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
				if t, err := time.Parse(layout, s); err == nil {
					return t
				}
			}
		}
	}
	return stored
}

// render fills the rule's message template, or returns fallback.
func render(rule *pipeline.AlertRule, data any, fallback string) string {
	if rule.MessageTemplate == nil {
		return fallback
	}
	var b strings.Builder
	if err := rule.MessageTemplate.Execute(&b, data); err != nil {
		return fallback + " (message template: " + firstLine(err.Error()) + ")"
	}
	return strings.ReplaceAll(b.String(), "<no value>", "")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
