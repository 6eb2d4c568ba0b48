package console

import (
	"sync"
	"time"

	"github.com/jetfleet/jetfleet/supervisor"
)

// history keeps the last n samples of every step's rate and lag: what
// the page's small charts draw. Memory is n points per step.
type history struct {
	mu    sync.Mutex
	n     int
	times []time.Time
	steps map[string]*stepSeries // by step/dataset
	order []string
}

// stepSeries holds one value per sample time; -1 where the step was not
// there (or no supervisor measured its rate).
type stepSeries struct {
	Step       string  `json:"step"`
	Dataset    string  `json:"dataset"`
	RecordsMin []int64 `json:"records_per_min"`
	Pending    []int64 `json:"pending"`
	InFlight   []int64 `json:"in_flight"`
}

// historyDoc is the history as the page reads it.
type historyDoc struct {
	Times []time.Time   `json:"times"`
	Steps []*stepSeries `json:"steps"`
	// Every is the seconds between samples.
	Every float64 `json:"every_s"`
}

func newHistory(n int) *history {
	return &history{n: max(n, 2), steps: map[string]*stepSeries{}}
}

func (h *history) add(st *supervisor.Status) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.times = append(h.times, st.Time)
	seen := map[string]bool{}
	for _, s := range st.Steps {
		key := s.Step + "/" + s.Dataset
		ss := h.steps[key]
		if ss == nil {
			ss = &stepSeries{Step: s.Step, Dataset: s.Dataset}
			pad := len(h.times) - 1
			for range pad {
				ss.RecordsMin, ss.Pending, ss.InFlight = append(ss.RecordsMin, -1), append(ss.Pending, -1), append(ss.InFlight, -1)
			}
			h.steps[key] = ss
			h.order = append(h.order, key)
		}
		seen[key] = true
		ss.RecordsMin = append(ss.RecordsMin, s.RecordsPerMinute)
		ss.Pending = append(ss.Pending, int64(s.Pending))
		ss.InFlight = append(ss.InFlight, int64(s.AckPending))
	}
	for key, ss := range h.steps {
		if !seen[key] {
			ss.RecordsMin, ss.Pending, ss.InFlight = append(ss.RecordsMin, -1), append(ss.Pending, -1), append(ss.InFlight, -1)
		}
	}
	if drop := len(h.times) - h.n; drop > 0 {
		h.times = h.times[drop:]
		for _, ss := range h.steps {
			ss.RecordsMin, ss.Pending, ss.InFlight = ss.RecordsMin[drop:], ss.Pending[drop:], ss.InFlight[drop:]
		}
	}
}

// series copies the history out.
func (h *history) series() historyDoc {
	h.mu.Lock()
	defer h.mu.Unlock()
	doc := historyDoc{Times: append([]time.Time{}, h.times...), Steps: []*stepSeries{}}
	for _, key := range h.order {
		ss := h.steps[key]
		doc.Steps = append(doc.Steps, &stepSeries{
			Step: ss.Step, Dataset: ss.Dataset,
			RecordsMin: append([]int64{}, ss.RecordsMin...), Pending: append([]int64{}, ss.Pending...), InFlight: append([]int64{}, ss.InFlight...),
		})
	}
	return doc
}
