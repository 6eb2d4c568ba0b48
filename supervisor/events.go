package supervisor

import (
	"encoding/json"
	"time"

	"github.com/jetfleet/jetfleet/subjects"
)

// Event is what the supervisor publishes on jf.sup.events (JSON): a
// worker's liveness transition or a dead letter it wrote.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"` // "worker" or "dead_letter"
	Step    string    `json:"step"`
	Dataset string    `json:"dataset"`
	Worker  string    `json:"worker,omitempty"`
	From    string    `json:"from,omitempty"` // liveness before ("" for a new worker)
	To      string    `json:"to,omitempty"`   // liveness after
	// Dead letters: where the message was and why.
	Stream string `json:"stream,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// Event kinds.
const (
	EventWorker     = "worker"
	EventDeadLetter = "dead_letter"
)

func (s *Supervisor) publishEvent(e Event) {
	e.Time = time.Now().UTC()
	data, err := json.Marshal(e)
	if err != nil {
		return
	}
	if err := s.cfg.Conn.Publish(subjects.SupEvents, data); err != nil {
		s.log.Debug().Err(err).Msg("publish event")
	}
}
