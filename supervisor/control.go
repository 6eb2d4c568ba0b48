package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// ControlResult is what a control request to a step or one worker got.
type ControlResult struct {
	// Subject the request went to.
	Subject string
	// BeatFilter is where the answering workers' heartbeats were heard.
	BeatFilter string
	// Trusted replies come from workers of the step that beat on their
	// own heartbeat subject; Untrusted ones did not (forged, or a user
	// that may not hear beats).
	Trusted, Untrusted []subjects.ControlReply
}

// SendControl sends req to every worker of step, or to one worker when
// worker is set, and collects replies for wait (for one worker: until its
// reply is vouched for). A worker beats after each control request, and
// only the step's own user may beat on its subject, so a beat vouches for
// the reply that names the same worker. The request's reply inbox is the
// connection's (it honours an inbox prefix).
func SendControl(ctx context.Context, nc *nats.Conn, step, worker string, req subjects.ControlRequest, wait time.Duration) (ControlResult, error) {
	res := ControlResult{Subject: subjects.ControlStep(step), BeatFilter: subjects.Heartbeat(step, "*")}
	if worker != "" {
		res.Subject, res.BeatFilter = subjects.Control(step, worker), subjects.Heartbeat(step, worker)
	}
	beats, err := nc.SubscribeSync(res.BeatFilter)
	if err != nil {
		return res, err
	}
	defer func() { _ = beats.Unsubscribe() }()
	replies, err := nc.SubscribeSync(nc.NewInbox())
	if err != nil {
		return res, err
	}
	defer func() { _ = replies.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		return res, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return res, err
	}
	if err := nc.PublishRequest(res.Subject, replies.Subject, body); err != nil {
		return res, err
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	res.Trusted, res.Untrusted = collectReplies(replies, beats, step, worker, deadline)
	return res, nil
}

// WhyUntrusted says why a reply was not trusted for step.
func WhyUntrusted(r subjects.ControlReply, step string) string {
	if r.Step != step {
		return "not a worker of " + step
	}
	return fmt.Sprintf("no heartbeat from it on %s", subjects.Heartbeat(step, r.Worker))
}

// collectReplies reads replies and beats until deadline (for one worker:
// until its reply is vouched for) and splits the replies into trusted and
// untrusted ones. A reply is trusted when it names step (and worker, if
// set) and a beat came from that worker on jf.hb.<step>.<worker>.
func collectReplies(replies, beats *nats.Subscription, step, worker string, deadline time.Time) (trusted, untrusted []subjects.ControlReply) {
	beaten := map[string]bool{}
	var pending []subjects.ControlReply
	settle := func() {
		keep := pending[:0]
		for _, r := range pending {
			if beaten[r.Worker] && r.Step == step && (worker == "" || r.Worker == worker) {
				trusted = append(trusted, r)
			} else {
				keep = append(keep, r)
			}
		}
		pending = keep
	}
	for time.Now().Before(deadline) && (worker == "" || len(trusted) == 0) {
		// Beats and replies come on two subscriptions; take what has come
		// on either, then wait a little on the replies.
		for {
			m, err := beats.NextMsg(0)
			if err != nil {
				break
			}
			var b subjects.Beat
			if json.Unmarshal(m.Data, &b) == nil {
				if p, err := subjects.Parse(m.Subject); err == nil && p.Worker == b.Worker {
					beaten[b.Worker] = true
				}
			}
		}
		m, err := replies.NextMsg(min(50*time.Millisecond, time.Until(deadline)))
		if err == nil {
			var r subjects.ControlReply
			if json.Unmarshal(m.Data, &r) == nil {
				pending = append(pending, r)
			}
		} else if !errors.Is(err, nats.ErrTimeout) {
			break
		}
		settle()
	}
	return trusted, pending
}

// StepOfWorker finds the step of a worker: from its live key
// hb.<step>.<worker> in the fleet bucket, else from its next heartbeat.
func StepOfWorker(ctx context.Context, nc *nats.Conn, worker string, wait time.Duration) (string, error) {
	if js, err := jetstream.New(nc); err == nil {
		lctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		if kv, err := js.KeyValue(lctx, subjects.FleetBucket); err == nil {
			if keys, err := kv.ListKeysFiltered(lctx, subjects.KeyWorker("*", worker)); err == nil {
				for k := range keys.Keys() {
					if parts := strings.Split(k, "."); len(parts) == 3 {
						_ = keys.Stop()
						return parts[1], nil
					}
				}
			}
		}
	}
	// No supervisor keeps the bucket: wait for a beat (every few seconds).
	sub, err := nc.SubscribeSync(subjects.Heartbeat("*", worker))
	if err != nil {
		return "", err
	}
	defer func() { _ = sub.Unsubscribe() }()
	bctx, cancel := context.WithTimeout(ctx, wait+6*time.Second) // workers beat every 5s
	defer cancel()
	m, err := sub.NextMsgWithContext(bctx)
	if err != nil {
		return "", fmt.Errorf("worker %s is not in the fleet (no key %s in %s, no heartbeat on %s): see jetfleet status",
			worker, subjects.KeyWorker("<step>", worker), subjects.FleetBucket, subjects.Heartbeat("*", worker))
	}
	p, err := subjects.Parse(m.Subject)
	if err != nil {
		return "", err
	}
	return p.Step, nil
}
