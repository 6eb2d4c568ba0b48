package alert

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/marts/query"
	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
)

// MartRulesConfig configures the mart and anomaly rules of one dataset's
// marts.
type MartRulesConfig struct {
	// JS publishes alerts and reaches the alerts bucket. Required.
	JS jetstream.JetStream
	// Spec and Dataset select the rules: mart and anomaly rules whose mart
	// is computed from Dataset.
	Spec    *pipeline.Spec
	Dataset string
	// DataDir holds the marts, as the aggregator's. Required.
	DataDir string
	Streams subjects.StreamOptions
	Logger  zerolog.Logger
	// NowFunc stamps fired_at. Default time.Now.
	NowFunc func() time.Time
}

// MartRules runs mart and anomaly rules after their mart's writes. The
// mart builder runs each rule's SQL on the connection that just wrote the
// mart ([MartRules.MartFlushed], at every write and when the builder takes
// over the build, so a write whose alerts a crash interrupted is evaluated
// again); Run publishes the alerts, with cooldowns, in the background. A
// rule is evaluated once per write of its mart: the write it last
// evaluated is kept in the alerts bucket.
type MartRules struct {
	cfg   MartRulesConfig
	rules []*pipeline.AlertRule
	log   zerolog.Logger

	mu      sync.Mutex
	pending map[string]evaluation // by rule: the latest rows not yet published
	busy    int                   // evaluations and publishes under way
	kick    chan struct{}

	// Owned by Run's goroutine.
	kv   jetstream.KeyValue
	cool *cooldowns
	seen map[string]map[string]bool // anomaly rule -> records alerted on
}

// NewMartRules builds the evaluator. It does no I/O.
func NewMartRules(cfg MartRulesConfig) (*MartRules, error) {
	if cfg.JS == nil || cfg.Spec == nil || cfg.DataDir == "" {
		return nil, errors.New("alert: mart rules need JetStream, a pipeline and a data dir")
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	m := &MartRules{
		cfg: cfg, pending: map[string]evaluation{}, kick: make(chan struct{}, 1), seen: map[string]map[string]bool{},
		log: cfg.Logger.With().Str("step", subjects.StepAlert.Name).Str("dataset", cfg.Dataset).Logger(),
	}
	for _, a := range cfg.Spec.Alerts {
		if (a.Kind == pipeline.AlertMart || a.Kind == pipeline.AlertAnomaly) && a.Dataset == cfg.Dataset {
			m.rules = append(m.rules, a)
		}
	}
	return m, nil
}

// Rules is how many rules the evaluator runs.
func (m *MartRules) Rules() int { return len(m.rules) }

// Querier runs SQL: the mart builder's connection.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// evaluation is a rule's rows from one write of its mart.
type evaluation struct {
	rule *pipeline.AlertRule
	man  marts.Manifest
	rows []row
}

// MartFlushed runs the SQL of the rules of the mart man describes on q,
// where the marts and lakes are views by their names, and queues the rows
// for Run to publish. A rule whose SQL fails is logged; the next write
// runs it again. It never waits on NATS.
func (m *MartRules) MartFlushed(ctx context.Context, q Querier, man marts.Manifest) {
	m.mu.Lock()
	m.busy++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.busy--
		m.mu.Unlock()
	}()
	queued := false
	for _, rule := range m.rules {
		if rule.Mart != man.Name {
			continue
		}
		rows, err := m.rows(ctx, func(ctx context.Context, sql string) (*query.Result, error) {
			r, err := q.QueryContext(ctx, sql)
			if err != nil {
				return nil, err
			}
			return query.Collect(r)
		}, rule.SQL)
		if err != nil {
			m.log.Warn().Str("rule", rule.Name).Str("error", firstLine(err.Error())).Msg("mart rule failed; the next write of its mart runs it again")
			continue
		}
		m.mu.Lock()
		m.pending[rule.Name] = evaluation{rule: rule, man: man, rows: rows}
		m.mu.Unlock()
		queued = true
	}
	if queued {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
}

// Pending counts the evaluations queued or under way (0: every write's
// alerts are published), so a caller that waited for the marts can wait
// for their alerts too (`jetfleet pipeline test`).
func (m *MartRules) Pending() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pending) + m.busy
}

// Run publishes the alerts of evaluated rules until ctx is cancelled. A
// failed publish is retried with backoff; it returns nil on cancel.
func (m *MartRules) Run(ctx context.Context) error {
	if len(m.rules) == 0 {
		<-ctx.Done()
		return nil
	}
	failures := 0
	for {
		if m.kv == nil {
			kv, err := m.prepare(ctx)
			if err != nil && ctx.Err() != nil {
				return nil
			}
			if err == nil {
				m.kv, m.cool = kv, &cooldowns{kv: kv}
			} else {
				m.log.Warn().Err(err).Msg("alerts bucket not reachable; retrying")
			}
		}
		if m.kv != nil {
			if err := m.publishPending(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				failures++
				m.log.Warn().Err(err).Int("failures", failures).Msg("mart rules failed; retrying")
			} else {
				failures = 0
			}
		}
		var retry <-chan time.Time
		var timer *time.Timer
		if failures > 0 || m.kv == nil {
			// Stopped after the wait, not deferred: a defer per turn of
			// this loop would pile up until the step stops.
			timer = time.NewTimer(min(time.Duration(1<<min(failures, 6))*250*time.Millisecond, 15*time.Second))
			retry = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-retry:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// publishPending publishes the queued evaluations; a failed one stays
// queued unless a newer one of its rule replaced it.
func (m *MartRules) publishPending(ctx context.Context) error {
	m.mu.Lock()
	pending := m.pending
	m.pending = map[string]evaluation{}
	m.busy++
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.busy--
		m.mu.Unlock()
	}()
	var errs []error
	for name, ev := range pending {
		if err := m.apply(ctx, ev); err != nil {
			errs = append(errs, err)
			m.mu.Lock()
			if _, newer := m.pending[name]; !newer {
				m.pending[name] = ev
			}
			m.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// EvaluateMart runs the rules of mart now. For tests and tools; Run
// calls it after each flush.
func (m *MartRules) EvaluateMart(ctx context.Context, mart string) error {
	if m.kv == nil {
		kv, err := m.prepare(ctx)
		if err != nil {
			return err
		}
		m.kv, m.cool = kv, &cooldowns{kv: kv}
	}
	return m.evaluateMart(ctx, mart)
}

// prepare makes sure the streams (alerts are published to JF_ALERTS) and
// the alerts bucket exist.
func (m *MartRules) prepare(ctx context.Context) (jetstream.KeyValue, error) {
	if err := subjects.Ensure(ctx, m.cfg.JS, m.cfg.Streams); err != nil {
		return nil, err
	}
	return openAlertsKV(ctx, m.cfg.JS, m.cfg.Streams)
}

// evalMark is the value of eval.<rule>: the flush last evaluated.
type evalMark struct {
	LastSeq   uint64    `json:"last_seq"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (m *MartRules) evaluateMart(ctx context.Context, mart string) error {
	man, err := marts.ReadManifest(marts.MartPath(m.cfg.DataDir, mart))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // not written yet
	}
	if err != nil {
		return err
	}
	var eng *query.Engine
	defer func() {
		if eng != nil {
			_ = eng.Close()
		}
	}()
	var errs []error
	for _, rule := range m.rules {
		if rule.Mart != mart {
			continue
		}
		if eng == nil {
			if eng, err = query.Open(ctx, query.Config{DataDir: m.cfg.DataDir, MemoryLimit: "256MB"}); err != nil {
				return fmt.Errorf("mart rules of %s: %w", mart, err)
			}
		}
		rows, err := m.rows(ctx, eng.Query, rule.SQL)
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %s", rule.Name, firstLine(err.Error())))
			continue
		}
		errs = append(errs, m.apply(ctx, evaluation{rule: rule, man: man, rows: rows}))
	}
	return errors.Join(errs...)
}

// apply publishes an evaluation's alerts unless this write of the mart was
// evaluated before, and notes it.
func (m *MartRules) apply(ctx context.Context, ev evaluation) error {
	rule, man := ev.rule, ev.man
	mark := evalMark{LastSeq: man.LastSeq, UpdatedAt: man.UpdatedAt.UTC()}
	if e, err := m.kv.Get(ctx, subjects.KeyEval(rule.Name)); err == nil {
		var last evalMark
		if json.Unmarshal(e.Value(), &last) == nil && last.LastSeq == mark.LastSeq && last.UpdatedAt.Equal(mark.UpdatedAt) {
			return nil // this write was evaluated
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("rule %s: %w", rule.Name, err)
	}
	if err := m.evaluate(ctx, rule, man, ev.rows); err != nil {
		// DuckDB errors can carry a stack trace; the first line says it.
		return fmt.Errorf("rule %s: %s", rule.Name, firstLine(err.Error()))
	}
	val, _ := json.Marshal(mark)
	if _, err := m.kv.Put(ctx, subjects.KeyEval(rule.Name), val); err != nil {
		return fmt.Errorf("rule %s: note evaluation: %w", rule.Name, err)
	}
	return nil
}

// row is one mart row: as JSON (for the alert) and as expression variables.
type row struct {
	raw json.RawMessage
	env map[string]any
}

func (m *MartRules) rows(ctx context.Context, runFunc func(context.Context, string) (*query.Result, error), q string) ([]row, error) {
	res, err := runFunc(ctx, q)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := res.Write(&buf, query.FormatJSON); err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(buf.Bytes(), &raws); err != nil {
		return nil, err
	}
	out := make([]row, 0, len(raws))
	for _, r := range raws {
		rec, err := pipeline.DecodeRecord(r)
		if err != nil {
			return nil, err
		}
		out = append(out, row{raw: r, env: pipeline.ExprEnv(rec)})
	}
	return out, nil
}

func (m *MartRules) evaluate(ctx context.Context, rule *pipeline.AlertRule, man marts.Manifest, rows []row) error {
	if rule.Kind == pipeline.AlertAnomaly {
		return m.anomalies(ctx, rule, man, rows)
	}
	// One alert per key value, with that key's rows, in first-seen order.
	var order []string
	groups := map[string][]row{}
	for _, r := range rows {
		key, err := evalKey(rule, r.env)
		if err != nil {
			m.log.Debug().Str("rule", rule.Name).Str("error", firstLine(err.Error())).Msg("key not evaluable on row")
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], r)
	}
	source := fmt.Sprintf("mart.%s.%d.%d", rule.Mart, man.LastSeq, man.UpdatedAt.UnixNano())
	for _, key := range order {
		g := groups[key]
		id := subjects.AlertMsgID(subjects.HashID(source+"\x00"+key), rule.Name, 0)
		d, err := m.cool.decide(ctx, rule.Name, key, id, man.UpdatedAt, rule.Cooldown)
		if err != nil {
			return err
		}
		if !d.fire {
			continue
		}
		data := map[string]any{}
		for k, v := range g[0].env {
			data[k] = v
		}
		envs := make([]map[string]any, len(g))
		for i, r := range g {
			envs[i] = r.env
		}
		data["rows"], data["count"], data["key"] = envs, len(g), key
		msg := fmt.Sprintf("%s: %d row(s) of mart %s", rule.Name, len(g), rule.Mart)
		if key != "" {
			msg += " for " + key
		}
		a := m.alert(rule, id, key, man.UpdatedAt, d.suppressed, render(rule, data, msg), g, man)
		if err := m.publish(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

// anomalies fires once for each flagged record not alerted on before.
func (m *MartRules) anomalies(ctx context.Context, rule *pipeline.AlertRule, man marts.Manifest, rows []row) error {
	seen, err := m.seenRecords(ctx, rule.Name)
	if err != nil {
		return err
	}
	for _, r := range rows {
		record := keyString(r.env["record"])
		if seen[record] {
			continue
		}
		series := keyString(r.env["series"])
		at := man.UpdatedAt
		if s, ok := r.env["event_time"].(string); ok {
			at = eventTime(pipeline.Record{"t": s}, "t", at)
		}
		id := subjects.AlertMsgID(subjects.HashID("anomaly\x00"+record), rule.Name, 0)
		d, err := m.cool.decide(ctx, rule.Name, series, id, at, rule.Cooldown)
		if err != nil {
			return err
		}
		if d.fire {
			msg := fmt.Sprintf("%s: %s %v is an outlier", rule.Name, rule.Anomaly.Field, r.env["value"])
			if series != "" {
				msg += " for " + rule.Anomaly.Key + " " + series
			}
			msg += fmt.Sprintf(" (baseline %v, score %v)", r.env["baseline"], r.env["score"])
			a := m.alert(rule, id, series, at, d.suppressed, render(rule, r.env, msg), []row{r}, man)
			if err := m.publish(ctx, a); err != nil {
				return err
			}
		}
		if _, err := m.kv.Put(ctx, subjects.KeySeen(rule.Name, record), []byte(strconv.FormatUint(man.LastSeq, 10))); err != nil {
			return err
		}
		seen[record] = true
	}
	return nil
}

// seenRecords loads, once per process, the records rule has alerted on.
func (m *MartRules) seenRecords(ctx context.Context, rule string) (map[string]bool, error) {
	if s, ok := m.seen[rule]; ok {
		return s, nil
	}
	s := map[string]bool{}
	prefix := subjects.KeySeen(rule, "x")
	prefix = prefix[:len(prefix)-1]
	lister, err := m.kv.ListKeysFiltered(ctx, prefix+">")
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, err
	}
	if lister != nil {
		for k := range lister.Keys() {
			if v, ok := subjects.ParseLookupKey(k[len(prefix):]); ok {
				s[v] = true
			}
		}
	}
	m.seen[rule] = s
	return s, nil
}

func (m *MartRules) alert(rule *pipeline.AlertRule, id, key string, at time.Time, suppressed int64, msg string, rows []row, man marts.Manifest) Alert {
	a := Alert{
		ID: id, Rule: rule.Name, Kind: rule.Kind, Severity: rule.Severity, Dataset: rule.Dataset, Mart: rule.Mart, Key: key,
		Time: at.UTC(), FiredAt: m.cfg.NowFunc().UTC(), Message: msg, Suppressed: suppressed,
		Context: Context{RowCount: len(rows), LastSeq: man.LastSeq},
	}
	for i, r := range rows {
		if i == MaxRows {
			break
		}
		a.Context.Rows = append(a.Context.Rows, r.raw)
	}
	return a
}

// publish stores the alert and waits for JetStream's ack.
func (m *MartRules) publish(ctx context.Context, a Alert) error {
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: subjects.Alert(a.Rule), Data: data, Header: nats.Header{}}
	msg.Header.Set(subjects.HeaderMsgID, a.ID)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := m.cfg.JS.PublishMsg(pctx, msg); err != nil {
		return fmt.Errorf("publish alert: %w", err)
	}
	metrics.AlertsFired.WithLabelValues(a.Rule, a.Severity).Inc()
	m.log.Info().Str("rule", a.Rule).Str("severity", a.Severity).Str("key", a.Key).Int64("suppressed", a.Suppressed).Msg("alert")
	return nil
}
