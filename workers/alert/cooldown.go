package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/subjects"
)

// recentFired is how many fired alert ids a cooldown entry remembers, so
// an input redelivered after a later alert of the same key still fires
// (again, with its old id, and the server drops the copy).
const recentFired = 8

// cooldownEntry is the value of a cool.<rule>.<key> key.
type cooldownEntry struct {
	// Last is the time of the last alert fired.
	Last time.Time `json:"last"`
	// Suppressed counts matches held back since Last.
	Suppressed int64 `json:"suppressed"`
	// LastSuppressed is the id the last suppressed match would have had,
	// so a redelivered match is not counted twice in a row.
	LastSuppressed string `json:"last_suppressed,omitempty"`
	// Recent are the latest alerts fired, newest last.
	Recent []firedAlert `json:"recent,omitempty"`
}

type firedAlert struct {
	ID         string `json:"id"`
	Suppressed int64  `json:"suppressed"`
}

// decision is what the cooldown says about one match.
type decision struct {
	fire       bool
	suppressed int64 // for a fired alert: matches held back before it
}

// cooldowns keeps the cooldown state in the alerts bucket. Every change
// is a compare-and-set on the key's revision, so replicas deciding on the
// same key at once agree on one alert.
type cooldowns struct {
	kv jetstream.KeyValue
}

// openAlertsKV creates or binds the alerts bucket; without a replica
// count an existing bucket keeps its own.
func openAlertsKV(ctx context.Context, js jetstream.JetStream, streams subjects.StreamOptions) (jetstream.KeyValue, error) {
	kv, err := subjects.EnsureKV(ctx, js, subjects.AlertsKV(streams), streams)
	if err != nil {
		return nil, fmt.Errorf("alerts bucket %s: %w", subjects.AlertsBucket, err)
	}
	return kv, nil
}

// decide applies the cooldown of rule and key to a match at time at whose
// alert would have id. A match at least cooldown after the last alert
// fires; an earlier one (late data included) is counted as suppressed.
func (c *cooldowns) decide(ctx context.Context, rule, key, id string, at time.Time, cooldown time.Duration) (decision, error) {
	d, err := c.decideKV(ctx, rule, key, id, at, cooldown)
	if err == nil && !d.fire {
		metrics.AlertsSuppressed.WithLabelValues(rule).Inc()
	}
	return d, err
}

func (c *cooldowns) decideKV(ctx context.Context, rule, key, id string, at time.Time, cooldown time.Duration) (decision, error) {
	if cooldown <= 0 {
		return decision{fire: true}, nil
	}
	k := subjects.KeyCooldown(rule, key)
	for attempt := 0; attempt < 50; attempt++ {
		var (
			st  cooldownEntry
			rev uint64
		)
		e, err := c.kv.Get(ctx, k)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return decision{}, fmt.Errorf("cooldown %s: %w", k, err)
		default:
			rev = e.Revision()
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				rev, st = e.Revision(), cooldownEntry{} // unreadable: start it over
			}
		}
		if i := slices.IndexFunc(st.Recent, func(f firedAlert) bool { return f.ID == id }); i >= 0 {
			return decision{fire: true, suppressed: st.Recent[i].Suppressed}, nil // a redelivery of a fired alert
		}
		var d decision
		if rev == 0 || !at.Before(st.Last.Add(cooldown)) {
			d = decision{fire: true, suppressed: st.Suppressed}
			if at.After(st.Last) {
				st.Last = at
			}
			st.Suppressed, st.LastSuppressed = 0, ""
			st.Recent = append(st.Recent, firedAlert{ID: id, Suppressed: d.suppressed})
			if len(st.Recent) > recentFired {
				st.Recent = st.Recent[len(st.Recent)-recentFired:]
			}
		} else {
			if st.LastSuppressed == id {
				return decision{}, nil
			}
			st.Suppressed++
			st.LastSuppressed = id
		}
		val, _ := json.Marshal(st)
		if rev == 0 {
			_, err = c.kv.Create(ctx, k, val)
		} else {
			_, err = c.kv.Update(ctx, k, val, rev)
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another replica decided first: decide again on its state
		}
		if err != nil {
			return decision{}, fmt.Errorf("cooldown %s: %w", k, err)
		}
		return d, nil
	}
	return decision{}, fmt.Errorf("cooldown %s: too many concurrent updates", k)
}
