package console

import (
	"context"
	"net/http"
	"time"

	"github.com/jetfleet/jetfleet/supervisor"
)

// statusDoc is what the page polls: the fleet as /status shows it, and
// what this console allows.
type statusDoc struct {
	Status *supervisor.Status `json:"status"`
	// Write says whether replay, pause, resume and drain are allowed.
	Write bool `json:"write"`
	// Query says whether the query box has marts to read.
	Query    bool       `json:"query"`
	Pipeline string     `json:"pipeline,omitempty"`
	Rules    []ruleInfo `json:"rules"`
}

// ruleInfo is an alert rule of the pipeline.
type ruleInfo struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Dataset  string `json:"dataset"`
	Mart     string `json:"mart,omitempty"`
	Severity string `json:"severity"`
	Cooldown string `json:"cooldown"`
	When     string `json:"when,omitempty"`
}

func (c *Console) serveStatus(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st, err := c.status(ctx)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "status: "+err.Error())
		return
	}
	doc := statusDoc{Status: st, Write: c.cfg.Write, Query: c.cfg.DataDir != "", Rules: []ruleInfo{}}
	if s := c.cfg.Spec; s != nil {
		doc.Pipeline = s.Name
		for _, a := range s.Alerts {
			cd := "none"
			if a.Cooldown > 0 {
				cd = a.Cooldown.String()
			}
			doc.Rules = append(doc.Rules, ruleInfo{Name: a.Name, Kind: a.Kind, Dataset: a.Dataset, Mart: a.Mart, Severity: a.Severity, Cooldown: cd, When: a.When})
		}
	}
	writeJSON(w, http.StatusOK, doc)
}

func (c *Console) serveHistory(w http.ResponseWriter, _ *http.Request) {
	doc := c.history.series()
	doc.Every = c.cfg.SampleEvery.Seconds()
	writeJSON(w, http.StatusOK, doc)
}
