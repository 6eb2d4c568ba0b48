package supervisor_test

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/supervisor"
)

// Every metric the shipped Grafana dashboard queries exists.
func TestDashboardMetricsExist(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../docs/grafana/jetfleet-dashboard.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(data, &dash))
	require.NotEmpty(t, dash.Panels)
	known := supervisor.MetricNames()
	metric := regexp.MustCompile(`jetfleet_[a-z0-9_]+`)
	seen := 0
	for _, p := range dash.Panels {
		require.NotEmpty(t, p.Targets, p.Title)
		for _, tg := range p.Targets {
			for _, name := range metric.FindAllString(tg.Expr, -1) {
				seen++
				require.True(t, slices.Contains(known, name), "panel %q queries %s, which /metrics does not expose", p.Title, name)
			}
		}
	}
	require.Positive(t, seen)
}
