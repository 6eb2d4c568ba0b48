package pipeline

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"go.yaml.in/yaml/v3"
)

// Alert rule kinds, told apart by the fields a rule has.
const (
	// AlertRecord rules have `when:`, a boolean expression over one clean
	// record; the alert step evaluates them.
	AlertRecord = "record"
	// AlertMart rules have `mart:` and `sql:`; the aggregator runs the SQL
	// over the mart after each flush and every returned row fires.
	AlertMart = "mart"
	// AlertAnomaly rules have `anomaly:`; they keep a generated mart of
	// flagged records and fire once for each newly flagged record.
	AlertAnomaly = "anomaly"
)

// Severities of an alert.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Anomaly methods.
const (
	MethodZScore = "zscore"
	MethodMAD    = "mad"
)

// Alert defaults, applied when the file leaves a field out.
const (
	DefaultCooldown         = 5 * time.Minute
	DefaultAnomalyMart      = "anomalies"
	DefaultAnomalyWindow    = 50
	DefaultAnomalyMinSample = 30
)

// DefaultThreshold is the outlier threshold of a method: |z| > 3, or a
// modified z-score (0.6745 (x - median) / MAD) above 3.5 (Iglewicz and
// Hoaglin's recommendation).
func DefaultThreshold(method string) float64 {
	if method == MethodMAD {
		return 3.5
	}
	return 3
}

// AlertRule is one rule of the alerts section.
type AlertRule struct {
	Name string
	Kind string // AlertRecord, AlertMart or AlertAnomaly
	// Dataset is the dataset the rule watches; for a mart rule, the
	// dataset of its mart (filled in by the check).
	Dataset string
	// Mart is the mart a mart rule queries; for an anomaly rule, the
	// generated mart that keeps its flagged records.
	Mart string
	// When is the condition of a record rule, compiled as WhenProgram.
	When        string
	WhenProgram *vm.Program
	// SQL is the query of a mart rule (for an anomaly rule, generated); the
	// rows it returns fire.
	SQL string
	// Key groups the cooldown: one cooldown per value of this expression
	// over the record (or mart row). Empty: one cooldown for the rule.
	Key        string
	KeyProgram *vm.Program
	// Time names the field holding a record's event time, which the
	// cooldown is measured in. Default: the dataset's first timestamp
	// column; a record without one uses the time JetStream stored it.
	Time     string
	Severity string
	// Cooldown is the least time between two alerts of the rule and key;
	// matches in between are counted, not sent. 0 sends every match.
	Cooldown time.Duration
	// Message is a text/template over the record (or, for mart rules, the
	// first row plus .rows and .count), compiled as MessageTemplate.
	Message         string
	MessageTemplate *template.Template
	// Webhooks names the targets the alert is POSTed to.
	Webhooks []string
	Anomaly  *Anomaly
	Pos      Pos
	// SQLPos is where the SQL (or the anomaly mapping) is written, for
	// errors found when it is compiled in DuckDB.
	SQLPos Pos
}

// Anomaly is a per-key rolling statistic on a numeric field: a record is
// an outlier when it is more than Threshold away from the previous Window
// values of its key, in standard deviations (zscore) or scaled median
// absolute deviations (mad).
type Anomaly struct {
	Field      string
	Key        string // field naming the series; "" for one series
	Method     string
	Window     int // previous values the statistic is computed over
	Threshold  float64
	MinSamples int // fewer previous values than this flag nothing
	Mart       string
}

// Webhook is an HTTP endpoint alerts are POSTed to.
type Webhook struct {
	Name string
	// URL and header values may hold ${VAR}, expanded from the
	// environment when the deliverer starts (keep secrets out of the file).
	URL     string
	Headers map[string]string
	// Timeout bounds one POST. Default 10s.
	Timeout time.Duration
	// Inline is true for a target written as a URL in a rule's webhooks.
	Inline bool
	Pos    Pos
}

// DefaultWebhookTimeout bounds one POST when the file says nothing.
const DefaultWebhookTimeout = 10 * time.Second

// Alert finds an alert rule by name, nil if there is none.
func (s *Spec) Alert(name string) *AlertRule {
	for _, a := range s.Alerts {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// Webhook finds a webhook target by name, nil if there is none.
func (s *Spec) Webhook(name string) *Webhook {
	for _, w := range s.Webhooks {
		if w.Name == name {
			return w
		}
	}
	return nil
}

// AlertsOf lists the rules of kind on dataset, in file order.
func (s *Spec) AlertsOf(dataset, kind string) []*AlertRule {
	var out []*AlertRule
	for _, a := range s.Alerts {
		if a.Dataset == dataset && a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}

func (d *decoder) parseWebhook(name string, k, n *yaml.Node, path string) *Webhook {
	w := &Webhook{Name: name, Pos: d.pos(k), Timeout: DefaultWebhookTimeout}
	if n.Kind == yaml.ScalarNode {
		w.URL = d.webhookURL(n, path)
		return w
	}
	d.mapping(n, path,
		field{name: "url", required: true, setFunc: func(v *yaml.Node, p string) { w.URL = d.webhookURL(v, p) }},
		field{name: "headers", setFunc: func(v *yaml.Node, p string) {
			w.Headers = map[string]string{}
			d.entries(v, p, "header", func(name string, k, v *yaml.Node, p string) {
				w.Headers[name] = d.str(v, p)
			})
		}},
		field{name: "timeout", setFunc: func(v *yaml.Node, p string) { w.Timeout = d.duration(v, p) }},
	)
	return w
}

func (d *decoder) webhookURL(n *yaml.Node, path string) string {
	s := d.str(n, path)
	if s == "" {
		return ""
	}
	if strings.Contains(s, "${") {
		return s // checked once expanded, when the deliverer starts
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		d.errorf(n, path, "got %q, want an http:// or https:// URL", s)
	}
	return s
}

func (d *decoder) parseAlert(name string, k, n *yaml.Node, path string, s *Spec) *AlertRule {
	a := &AlertRule{Name: name, Pos: d.pos(k), Severity: SeverityWarning, Cooldown: -1}
	nodes := map[string]*yaml.Node{}
	mark := func(key string, v *yaml.Node) { nodes[key] = v }
	var keyText string
	ok := d.mapping(n, path,
		field{name: "dataset", setFunc: func(v *yaml.Node, p string) { mark("dataset", v); a.Dataset = d.str(v, p) }},
		field{name: "when", setFunc: func(v *yaml.Node, p string) { mark("when", v); a.When = d.str(v, p) }},
		field{name: "mart", setFunc: func(v *yaml.Node, p string) { mark("mart", v); a.Mart = d.str(v, p) }},
		field{name: "sql", setFunc: func(v *yaml.Node, p string) {
			mark("sql", v)
			a.SQL = strings.TrimRight(strings.TrimSpace(d.str(v, p)), ";")
			a.SQLPos = d.pos(v)
		}},
		field{name: "anomaly", setFunc: func(v *yaml.Node, p string) {
			mark("anomaly", v)
			a.SQLPos = d.pos(v)
			a.Anomaly = d.parseAnomaly(v, p)
		}},
		field{name: "key", setFunc: func(v *yaml.Node, p string) { mark("key", v); keyText = d.str(v, p) }},
		field{name: "time", setFunc: func(v *yaml.Node, p string) { mark("time", v); a.Time = d.str(v, p) }},
		field{name: "severity", setFunc: func(v *yaml.Node, p string) {
			a.Severity = d.oneOfNonEmpty(v, p, SeverityWarning, SeverityInfo, SeverityWarning, SeverityCritical)
		}},
		field{name: "cooldown", setFunc: func(v *yaml.Node, p string) { a.Cooldown = d.cooldown(v, p) }},
		field{name: "message", setFunc: func(v *yaml.Node, p string) {
			a.Message = d.str(v, p)
			if a.Message == "" {
				return
			}
			t, err := template.New(name).Option("missingkey=zero").Parse(a.Message)
			if err != nil {
				d.errorf(v, p, "not a valid template (Go text/template, e.g. \"order {{.order_id}}\"): %s", oneLine(err.Error()))
				return
			}
			a.MessageTemplate = t
		}},
		field{name: "webhooks", setFunc: func(v *yaml.Node, p string) {
			mark("webhooks", v)
			a.Webhooks = d.alertWebhooks(v, p, name, s)
		}},
	)
	if !ok {
		return nil
	}
	has := func(k string) bool { return nodes[k] != nil }
	kinds := 0
	for _, k := range []string{"when", "sql", "anomaly"} {
		if has(k) {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		d.errorf(n, path, "a rule needs when (an expression over a record), mart and sql (a query over a mart) or anomaly (a rolling statistic)")
		return nil
	case kinds > 1:
		d.errorf(n, path, "a rule has one of when, sql and anomaly (split it in two)")
		return nil
	}
	switch {
	case has("when"):
		a.Kind = AlertRecord
		if !has("dataset") {
			d.errorf(n, join(path, "dataset"), "missing (required: the dataset whose clean records the rule watches)")
		}
		if has("mart") {
			d.errorf(nodes["mart"], join(path, "mart"), "not allowed on a record rule (mart goes with sql)")
		}
		a.WhenProgram = d.compileExpr(nodes["when"], join(path, "when"), a.When, expr.AsBool())
	case has("sql"):
		a.Kind = AlertMart
		if !has("mart") {
			d.errorf(n, join(path, "mart"), "missing (required: the mart the sql queries)")
		}
		if has("dataset") {
			d.errorf(nodes["dataset"], join(path, "dataset"), "not allowed on a mart rule (its dataset is its mart's)")
		}
		if has("time") {
			d.errorf(nodes["time"], join(path, "time"), "not allowed on a mart rule (its time is the flush's)")
		}
		if a.SQL == "" && nodes["sql"].Kind == yaml.ScalarNode {
			d.errorf(nodes["sql"], join(path, "sql"), "empty, want a DuckDB SELECT over the mart")
		}
	default:
		a.Kind = AlertAnomaly
		if !has("dataset") {
			d.errorf(n, join(path, "dataset"), "missing (required: the dataset whose records the rule watches)")
		}
		for _, k := range []string{"mart", "key"} {
			if has(k) {
				d.errorf(nodes[k], join(path, k), "not allowed on an anomaly rule (set it inside anomaly)")
			}
		}
		if a.Anomaly != nil {
			a.Mart = a.Anomaly.Mart
			a.Key = a.Anomaly.Key
		}
	}
	if keyText != "" {
		a.Key = keyText
		a.KeyProgram = d.compileExpr(nodes["key"], join(path, "key"), keyText)
	}
	if a.Cooldown < 0 {
		a.Cooldown = DefaultCooldown
		if a.Kind == AlertAnomaly {
			a.Cooldown = 0 // every newly flagged record is its own alert
		}
	}
	return a
}

// oneOfNonEmpty is oneOf that also refuses an empty string, returning
// fallback for any bad value so later checks see a valid one.
func (d *decoder) oneOfNonEmpty(n *yaml.Node, path, fallback string, allowed ...string) string {
	if n.Kind == yaml.ScalarNode && n.Value == "" {
		d.errorf(n, path, "empty, want one of %s", strings.Join(allowed, ", "))
		return fallback
	}
	if v := d.oneOf(n, path, allowed...); v != "" {
		return v
	}
	return fallback
}

// cooldown decodes a duration that may be 0 (no cooldown).
func (d *decoder) cooldown(n *yaml.Node, path string) time.Duration {
	if !d.scalar(n, path, "a duration such as 10m, or 0") {
		return -1
	}
	if n.Value == "0" {
		return 0
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		d.errorf(n, path, "got %q, want a duration such as 30s or 10m, or 0 for none", n.Value)
		return -1
	}
	return v
}

func (d *decoder) alertWebhooks(n *yaml.Node, path, rule string, s *Spec) []string {
	var out []string
	d.list(n, path, "webhook names or URLs", func(i int, v *yaml.Node, p string) {
		ref := d.str(v, p)
		if ref == "" {
			return
		}
		if strings.Contains(ref, "://") {
			w := &Webhook{Name: rule + "_" + strconv.Itoa(i+1), URL: d.webhookURL(v, p), Timeout: DefaultWebhookTimeout, Inline: true, Pos: d.pos(v)}
			s.Webhooks = append(s.Webhooks, w)
			out = append(out, w.Name)
			return
		}
		out = append(out, ref)
		s.webhookRefs = append(s.webhookRefs, webhookRef{name: ref, pos: d.pos(v), path: p})
	})
	return out
}

type webhookRef struct {
	name string
	pos  Pos
	path string
}

func (d *decoder) parseAnomaly(n *yaml.Node, path string) *Anomaly {
	an := &Anomaly{Method: MethodZScore, Window: DefaultAnomalyWindow, MinSamples: DefaultAnomalyMinSample, Mart: DefaultAnomalyMart, Threshold: -1}
	var minNode, winNode *yaml.Node
	ok := d.mapping(n, path,
		field{name: "field", required: true, setFunc: func(v *yaml.Node, p string) { an.Field = d.ident(v, p) }},
		field{name: "key", setFunc: func(v *yaml.Node, p string) { an.Key = d.ident(v, p) }},
		field{name: "method", setFunc: func(v *yaml.Node, p string) { an.Method = d.oneOfNonEmpty(v, p, MethodZScore, MethodZScore, MethodMAD) }},
		field{name: "window", setFunc: func(v *yaml.Node, p string) { winNode = v; an.Window = d.integer(v, p, 2) }},
		field{name: "threshold", setFunc: func(v *yaml.Node, p string) {
			an.Threshold = d.number(v, p)
			if an.Threshold <= 0 {
				d.errorf(v, p, "got %v, want a positive number", an.Threshold)
			}
		}},
		field{name: "min_samples", setFunc: func(v *yaml.Node, p string) { minNode = v; an.MinSamples = d.integer(v, p, 2) }},
		field{name: "mart", setFunc: func(v *yaml.Node, p string) {
			an.Mart = d.str(v, p)
			d.token(v, p, "mart", an.Mart)
		}},
	)
	if !ok {
		return nil
	}
	if an.Threshold < 0 {
		an.Threshold = DefaultThreshold(an.Method)
	}
	if an.MinSamples > an.Window {
		at := minNode
		if at == nil {
			at = winNode
		}
		d.errorf(at, join(path, "min_samples"), "%d is more than window %d", an.MinSamples, an.Window)
	}
	return an
}

// ident decodes a field name usable in SQL and expressions.
func (d *decoder) ident(n *yaml.Node, path string) string {
	s := d.str(n, path)
	if s != "" && !identRE.MatchString(s) {
		d.errorf(n, path, "%q is not a field name (letters, digits and _)", s)
	}
	return s
}

// checkAlerts resolves the alerts' references once every part is parsed,
// and adds the marts of anomaly rules to the spec.
func (d *decoder) checkAlerts(s *Spec) {
	fail := func(pos Pos, field, format string, args ...any) {
		d.errs = append(d.errs, &FieldError{Pos: pos, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, ref := range s.webhookRefs {
		if s.Webhook(ref.name) == nil {
			fail(ref.pos, ref.path, "no webhook %s (webhooks are %s)", ref.name, webhookNames(s.Webhooks))
		}
	}
	seenWebhooks := map[string]Pos{}
	for _, w := range s.Webhooks {
		if p, dup := seenWebhooks[w.Name]; dup {
			fail(w.Pos, "webhooks."+w.Name, "name clashes with the target at %s (inline URLs are named <rule>_<n>)", p)
		}
		seenWebhooks[w.Name] = w.Pos
	}
	anomalyMarts := map[string]*AlertRule{}
	for _, a := range s.Alerts {
		path := "alerts." + a.Name
		if a.Kind == AlertMart {
			m := s.Mart(a.Mart)
			if m == nil {
				fail(a.Pos, path+".mart", "no mart %s (marts are %s)", a.Mart, martNames(s.Marts))
				continue
			}
			a.Dataset = m.Dataset
			continue
		}
		ds := s.Dataset(a.Dataset)
		if ds == nil {
			fail(a.Pos, path+".dataset", "no dataset %s (datasets are %s)", a.Dataset, strings.Join(s.DatasetNames(), ", "))
			continue
		}
		if a.Time != "" {
			if _, ok := ds.Column(a.Time); !ok {
				fail(a.Pos, path+".time", "%s is not a column of dataset %s", a.Time, ds.Name)
			}
		} else {
			a.Time = TimeColumn(ds)
		}
		if a.Kind != AlertAnomaly || a.Anomaly == nil {
			continue
		}
		an := a.Anomaly
		for _, f := range []struct{ name, what string }{{an.Field, "field"}, {an.Key, "key"}} {
			if f.name == "" {
				continue
			}
			if _, ok := ds.Column(f.name); !ok {
				fail(a.SQLPos, path+".anomaly."+f.what, "%s is not a column of dataset %s", f.name, ds.Name)
			}
		}
		if c, ok := ds.Column(an.Field); ok && c.FieldKind() != TypeNumber && c.FieldKind() != "integer" {
			fail(a.SQLPos, path+".anomaly.field", "%s is %s, want a numeric column", an.Field, c.Type)
		}
		if a.Time == "" {
			fail(a.SQLPos, path+".time", "dataset %s has no TIMESTAMP or DATE column to order the series by (add one, or name it with time)", ds.Name)
			continue
		}
		if other, ok := anomalyMarts[an.Mart]; ok && other.Dataset != a.Dataset {
			fail(a.SQLPos, path+".anomaly.mart", "mart %s keeps anomalies of dataset %s (rule %s); give this rule its own mart", an.Mart, other.Dataset, other.Name)
			continue
		}
		if m := s.Mart(an.Mart); m != nil && !m.Generated {
			fail(a.SQLPos, path+".anomaly.mart", "a mart %s is defined at %s; name the anomalies mart differently", an.Mart, m.Pos)
			continue
		}
		anomalyMarts[an.Mart] = a
		a.SQL = fmt.Sprintf("SELECT * FROM %s WHERE rule = %s ORDER BY event_time, record", quoteIdent(an.Mart), quoteLiteral(a.Name)) // event-time order, so a cooldown decides the same way every time
		m := s.Mart(an.Mart)
		if m == nil {
			m = &Mart{Name: an.Mart, Dataset: a.Dataset, FlushRecords: DefaultFlushRecords, FlushInterval: DefaultFlushInterval, Pos: a.SQLPos, Generated: true}
			s.Marts = append(s.Marts, m)
		}
		q := AnomalySQL(a, ds)
		if m.SQL == "" {
			m.SQL = q
		} else {
			m.SQL += "\nUNION ALL\n" + q
		}
	}
}

// TimeColumn is a dataset's first TIMESTAMP, TIMESTAMPTZ or DATE column,
// "" if it has none.
func TimeColumn(ds *Dataset) string {
	for _, c := range ds.Schema {
		t := strings.ToUpper(c.Type)
		if strings.HasPrefix(t, "TIMESTAMP") || t == "DATE" || t == "DATETIME" {
			return c.Name
		}
	}
	return ""
}

// AnomalySQL is the DuckDB query that flags a rule's outliers: each
// record compared with the previous Window values of its key, ordered by
// event time (and the dataset key, so ties order the same every time).
// Its columns are the anomalies mart's: rule, series, record, event_time,
// value, baseline (mean or median), spread (standard deviation or MAD),
// score, samples.
func AnomalySQL(a *AlertRule, ds *Dataset) string {
	an := a.Anomaly
	v := "CAST(" + quoteIdent(an.Field) + " AS DOUBLE)"
	series, partition := "CAST(NULL AS VARCHAR)", ""
	if an.Key != "" {
		series = "CAST(" + quoteIdent(an.Key) + " AS VARCHAR)"
		partition = "PARTITION BY " + quoteIdent(an.Key) + " "
	}
	window := fmt.Sprintf("(%sORDER BY %s, %s ROWS BETWEEN %d PRECEDING AND 1 PRECEDING)", partition, quoteIdent(a.Time), quoteIdent(ds.Key), an.Window)
	baseline, spread, score := "avg(_v) OVER _w", "stddev_samp(_v) OVER _w", "(value - baseline) / spread"
	if an.Method == MethodMAD {
		baseline, spread, score = "median(_v) OVER _w", "mad(_v) OVER _w", "0.6745 * (value - baseline) / spread"
	}
	return fmt.Sprintf(`SELECT %[1]s AS rule, series, record, event_time, value, baseline, spread, score, samples FROM (
  SELECT *, CASE WHEN spread > 0 THEN %[2]s END AS score FROM (
    SELECT %[3]s AS series, CAST(%[4]s AS VARCHAR) AS record, CAST(%[5]s AS TIMESTAMPTZ) AS event_time, _v AS value,
           %[6]s AS baseline, %[7]s AS spread, count(_v) OVER _w AS samples
    FROM (SELECT *, %[8]s AS _v FROM %[9]s WHERE %[8]s IS NOT NULL AND %[5]s IS NOT NULL)
    WINDOW _w AS %[10]s
  )
) WHERE samples >= %[11]d AND (abs(score) > %[12]s OR (spread = 0 AND value <> baseline))`,
		quoteLiteral(a.Name), score, series, quoteIdent(ds.Key), quoteIdent(a.Time), baseline, spread, v, quoteIdent(ds.Name), window,
		an.MinSamples, strconv.FormatFloat(an.Threshold, 'g', -1, 64))
}

func quoteIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

func webhookNames(ws []*Webhook) string {
	var names []string
	for _, w := range ws {
		if !w.Inline {
			names = append(names, w.Name)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

func martNames(ms []*Mart) string {
	if len(ms) == 0 {
		return "none"
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}
