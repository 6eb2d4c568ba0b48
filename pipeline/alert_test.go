package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
)

const alertsBase = `name: p
datasets:
  d:
    key: id
    schema:
      - {name: id, type: VARCHAR}
      - {name: sym, type: VARCHAR}
      - {name: price, type: DOUBLE}
      - {name: ts, type: TIMESTAMPTZ}
marts:
  m:
    dataset: d
    sql: SELECT sym, max(price) AS top FROM d GROUP BY sym
`

func TestParseAlerts(t *testing.T) {
	t.Parallel()
	s, err := pipeline.Parse("p.yaml", []byte(alertsBase+`webhooks:
  ops: {url: "https://hooks.example.com/x", headers: {Authorization: "Bearer ${TOKEN}"}, timeout: 3s}
  plain: http://127.0.0.1:9/y
alerts:
  big:
    dataset: d
    when: price > 100
    key: sym
    cooldown: 1m
    severity: critical
    message: "{{.sym}} at {{.price}}"
    webhooks: [ops, "http://127.0.0.1:9/inline"]
  top:
    mart: m
    sql: SELECT * FROM m WHERE top > 10
    cooldown: 0
  spike:
    dataset: d
    anomaly: {field: price, key: sym, method: mad, window: 40}
`))
	require.NoError(t, err)
	big := s.Alert("big")
	require.Equal(t, pipeline.AlertRecord, big.Kind)
	require.Equal(t, time.Minute, big.Cooldown)
	require.Equal(t, "critical", big.Severity)
	require.Equal(t, "ts", big.Time, "the dataset's timestamp column by default")
	require.NotNil(t, big.WhenProgram)
	require.NotNil(t, big.KeyProgram)
	require.Equal(t, []string{"ops", "big_2"}, big.Webhooks, "an inline URL becomes a target named after the rule")
	require.Equal(t, "http://127.0.0.1:9/inline", s.Webhook("big_2").URL)
	require.Equal(t, "Bearer ${TOKEN}", s.Webhook("ops").Headers["Authorization"], "expanded when the deliverer starts")
	require.Equal(t, 3*time.Second, s.Webhook("ops").Timeout)
	require.Equal(t, "http://127.0.0.1:9/y", s.Webhook("plain").URL)

	top := s.Alert("top")
	require.Equal(t, pipeline.AlertMart, top.Kind)
	require.Equal(t, "d", top.Dataset, "a mart rule's dataset is its mart's")
	require.Zero(t, top.Cooldown)

	spike := s.Alert("spike")
	require.Equal(t, pipeline.AlertAnomaly, spike.Kind)
	require.Equal(t, "anomalies", spike.Mart)
	require.Equal(t, 3.5, spike.Anomaly.Threshold, "mad's default threshold")
	require.Equal(t, 40, spike.Anomaly.Window)
	m := s.Mart("anomalies")
	require.NotNil(t, m)
	require.True(t, m.Generated)
	require.Contains(t, m.SQL, "mad(_v) OVER _w")
	require.Contains(t, m.SQL, `PARTITION BY "sym" ORDER BY "ts", "id" ROWS BETWEEN 40 PRECEDING AND 1 PRECEDING`)
	require.Len(t, s.AlertsOf("d", pipeline.AlertRecord), 1)
}

// TestParseAlertErrors: every mistake in a rule names file:line:column,
// the field, and what was expected.
func TestParseAlertErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       string
	}{
		{"no kind", "alerts:\n  a: {dataset: d}\n", "p.yaml:15:6: alerts.a: a rule needs when"},
		{"two kinds", "alerts:\n  a: {dataset: d, when: 'price > 1', anomaly: {field: price}}\n", "p.yaml:15:6: alerts.a: a rule has one of when, sql and anomaly"},
		{"bad when", "alerts:\n  a:\n    dataset: d\n    when: price >\n", "p.yaml:17:11: alerts.a.when: expression does not compile"},
		{"when not bool", "alerts:\n  a: {dataset: d, when: '1 + 2'}\n", "alerts.a.when: expression does not compile: expected bool"},
		{"record no dataset", "alerts:\n  a: {when: 'price > 1'}\n", "p.yaml:15:6: alerts.a.dataset: missing"},
		{"unknown dataset", "alerts:\n  a: {dataset: e, when: 'price > 1'}\n", "p.yaml:15:3: alerts.a.dataset: no dataset e (datasets are d)"},
		{"bad key", "alerts:\n  a: {dataset: d, when: 'price > 1', key: 'sym +'}\n", "alerts.a.key: expression does not compile"},
		{"bad severity", "alerts:\n  a: {dataset: d, when: 'price > 1', severity: page}\n", "p.yaml:15:48: alerts.a.severity: got \"page\", want one of info, warning, critical"},
		{"empty severity", "alerts:\n  a: {dataset: d, when: 'price > 1', severity: ''}\n", "alerts.a.severity: empty, want one of info, warning, critical"},
		{"bad cooldown", "alerts:\n  a: {dataset: d, when: 'price > 1', cooldown: soon}\n", "alerts.a.cooldown: got \"soon\", want a duration"},
		{"bad template", "alerts:\n  a: {dataset: d, when: 'price > 1', message: '{{.sym'}\n", "alerts.a.message: not a valid template"},
		{"unknown field", "alerts:\n  a: {dataset: d, when: 'price > 1', colour: red}\n", "p.yaml:15:38: alerts.a.colour: unknown key"},
		{"time not a column", "alerts:\n  a: {dataset: d, when: 'price > 1', time: when}\n", "alerts.a.time: when is not a column of dataset d"},
		{"mart rule no mart", "alerts:\n  a: {sql: SELECT 1}\n", "alerts.a.mart: missing"},
		{"mart rule unknown mart", "alerts:\n  a: {mart: n, sql: SELECT 1}\n", "alerts.a.mart: no mart n (marts are m)"},
		{"mart rule with dataset", "alerts:\n  a: {mart: m, dataset: d, sql: SELECT 1}\n", "alerts.a.dataset: not allowed on a mart rule"},
		{"unknown webhook", "alerts:\n  a: {dataset: d, when: 'price > 1', webhooks: [ops]}\n", "p.yaml:15:49: alerts.a.webhooks[0]: no webhook ops (webhooks are none)"},
		{"bad webhook url", "webhooks:\n  ops: ftp://x\n", "p.yaml:15:8: webhooks.ops: got \"ftp://x\", want an http:// or https:// URL"},
		{"bad webhook name", "webhooks:\n  o.ps: http://x\n", "p.yaml:15:3: webhooks.o.ps"},
		{"anomaly no field", "alerts:\n  a: {dataset: d, anomaly: {key: sym}}\n", "alerts.a.anomaly.field: missing"},
		{"anomaly unknown field", "alerts:\n  a: {dataset: d, anomaly: {field: cost}}\n", "alerts.a.anomaly.field: cost is not a column of dataset d"},
		{"anomaly text field", "alerts:\n  a: {dataset: d, anomaly: {field: sym}}\n", "alerts.a.anomaly.field: sym is VARCHAR, want a numeric column"},
		{"anomaly bad method", "alerts:\n  a: {dataset: d, anomaly: {field: price, method: iqr}}\n", "alerts.a.anomaly.method: got \"iqr\", want one of zscore, mad"},
		{"anomaly min > window", "alerts:\n  a: {dataset: d, anomaly: {field: price, window: 5, min_samples: 6}}\n", "alerts.a.anomaly.min_samples: 6 is more than window 5"},
		{"anomaly bad threshold", "alerts:\n  a: {dataset: d, anomaly: {field: price, threshold: -1}}\n", "alerts.a.anomaly.threshold: got -1, want a positive number"},
		{"anomaly mart clash", "alerts:\n  a: {dataset: d, anomaly: {field: price, mart: m}}\n", "alerts.a.anomaly.mart: a mart m is defined at p.yaml:11:3"},
		{"anomaly key outside", "alerts:\n  a: {dataset: d, key: sym, anomaly: {field: price}}\n", "alerts.a.key: not allowed on an anomaly rule"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := pipeline.Parse("p.yaml", []byte(alertsBase+tc.yaml))
			require.ErrorIs(t, err, pipeline.ErrInvalidSpec)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestParseAnomalyNeedsTime(t *testing.T) {
	t.Parallel()
	yaml := strings.Replace(alertsBase, "      - {name: ts, type: TIMESTAMPTZ}\n", "", 1) + "alerts:\n  a: {dataset: d, anomaly: {field: price}}\n"
	_, err := pipeline.Parse("p.yaml", []byte(yaml))
	require.ErrorContains(t, err, "alerts.a.time: dataset d has no TIMESTAMP or DATE column to order the series by")
}

// FuzzParseAlerts: any alerts section either fails with positioned
// errors or yields rules whose references all resolve.
func FuzzParseAlerts(f *testing.F) {
	f.Add("webhooks:\n  ops: http://x/y\nalerts:\n  a: {dataset: d, when: 'price > 1', key: sym, webhooks: [ops, 'http://z/w']}\n")
	f.Add("alerts:\n  a: {mart: m, sql: SELECT * FROM m, cooldown: 0}\n")
	f.Add("alerts:\n  a: {dataset: d, anomaly: {field: price, key: sym, method: mad, window: 5, min_samples: 2}}\n  b: {dataset: d, anomaly: {field: price}}\n")
	f.Add("alerts:\n  a: {dataset: d, when: 'true', message: '{{.sym}}', time: ts, severity: info}\n")
	f.Fuzz(func(t *testing.T, section string) {
		s, err := pipeline.Parse("p.yaml", []byte(alertsBase+section))
		if err != nil {
			require.ErrorIs(t, err, pipeline.ErrInvalidSpec)
			return
		}
		for _, a := range s.Alerts {
			switch a.Kind {
			case pipeline.AlertRecord:
				require.NotNil(t, a.WhenProgram)
				require.NotNil(t, s.Dataset(a.Dataset))
			case pipeline.AlertMart, pipeline.AlertAnomaly:
				require.NotNil(t, s.Mart(a.Mart))
				require.NotEmpty(t, a.SQL)
			default:
				t.Fatalf("rule %s has no kind", a.Name)
			}
			require.Contains(t, []string{"info", "warning", "critical"}, a.Severity)
			require.GreaterOrEqual(t, a.Cooldown, time.Duration(0))
			for _, w := range a.Webhooks {
				require.NotNil(t, s.Webhook(w), "rule %s names webhook %s", a.Name, w)
			}
		}
	})
}
