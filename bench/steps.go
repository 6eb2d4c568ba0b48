package bench

import (
	"context"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/subjects"
)

// rawHopMaxRecords bounds the raw hop baseline of timed runs: enough for
// a steady rate, without holding a soak run's every message.
const rawHopMaxRecords = 200_000

// recordsOf is how many records a message carries.
func recordsOf(m *nats.Msg) int {
	if n, err := strconv.Atoi(m.Header.Get(subjects.HeaderRecords)); err == nil && n > 0 {
		return n
	}
	return 1
}

// stepRates is each step's records over the time from the first publish
// to its last ack. A step's input is what the step before passed on:
// validate gets what the server did not drop as duplicate, transform
// what validate did not dead-letter, aggregate the clean records.
func stepRates(ctx context.Context, js jetstream.JetStream, cfg Config, dataset string, start time.Time, done []time.Time, published, serverDups int64, clean int) ([]StepRate, error) {
	dead, err := deadLettersByStep(ctx, js, dataset)
	if err != nil {
		return nil, err
	}
	in := published
	if cfg.Mode == ModeRecord {
		in -= serverDups // a bulk chunk is never a duplicate of another
	}
	var out []StepRate
	for i, sc := range stepConsumers() {
		if sc.step == subjects.StepAggregate.Name {
			in = int64(clean)
		}
		var d time.Duration
		if !done[i].IsZero() {
			d = done[i].Sub(start)
		}
		out = append(out, StepRate{Step: sc.step, Rate: newRate(0, in, d), DeadLetters: dead[sc.step]})
		in -= int64(dead[sc.step])
	}
	return out, nil
}

// deadLettersByStep counts the dataset's dead letters per failing step
// from the subjects of JF_DLQ (jf.dlq.<step>.<dataset>).
func deadLettersByStep(ctx context.Context, js jetstream.JetStream, dataset string) (map[string]uint64, error) {
	s, err := js.Stream(ctx, subjects.StreamDLQ)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, sc := range stepConsumers() {
		subj := subjects.DeadLetter(sc.step, dataset)
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(subj))
		if err != nil {
			return nil, err
		}
		out[sc.step] = info.State.Subjects[subj]
	}
	return out, nil
}
