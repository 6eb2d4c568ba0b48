package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/alert"
)

// maxAlerts is how many of the newest alerts the page lists.
const maxAlerts = 100

type storedAlert struct {
	Seq    uint64    `json:"seq"`
	Stored time.Time `json:"stored"`
	alert.Alert
}

func (c *Console) serveAlerts(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	out, err := recentAlerts(ctx, c.cfg.JS, maxAlerts)
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "alerts: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// recentAlerts reads the last n alerts of JF_ALERTS, newest first.
func recentAlerts(ctx context.Context, js jetstream.JetStream, n int) ([]storedAlert, error) {
	out := []storedAlert{}
	s, err := js.Stream(ctx, subjects.StreamAlerts)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	st := s.CachedInfo().State
	if st.Msgs == 0 {
		return out, nil
	}
	start := st.FirstSeq
	if st.LastSeq >= uint64(n) && st.LastSeq-uint64(n)+1 > start {
		start = st.LastSeq - uint64(n) + 1
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: start})
	if err != nil {
		return nil, err
	}
	for len(out) < n {
		m, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			break // read to the end (or the stream was purged meanwhile)
		}
		var a storedAlert
		if meta, err := m.Metadata(); err == nil {
			a.Seq, a.Stored = meta.Sequence.Stream, meta.Timestamp.UTC()
			if err := json.Unmarshal(m.Data(), &a.Alert); err != nil || a.Rule == "" {
				a.Alert = alert.Alert{Message: "not an alert: " + string(m.Data())}
			}
			out = append(out, a)
			if meta.NumPending == 0 {
				break
			}
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
