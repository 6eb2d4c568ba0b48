package subjects

import "errors"

var (
	// ErrInvalidToken is wrapped by every error about a subject token
	// (dataset, step, worker or rule name) that cannot be used.
	ErrInvalidToken = errors.New("invalid subject token")

	// ErrStreamConflict reports an existing stream whose configuration
	// cannot be reconciled with the wire contract without data loss.
	ErrStreamConflict = errors.New("existing stream conflicts with jetfleet's definition")

	// ErrNotSetUp reports a stream, consumer or bucket that a bind-only
	// process ([StreamOptions].BindOnly) needs and that does not exist:
	// `jetfleet setup` creates them.
	ErrNotSetUp = errors.New("not set up")

	// ErrConsumerConflict reports an existing durable consumer whose
	// configuration breaks the wire contract (another filter, ack policy
	// or unlimited deliveries).
	ErrConsumerConflict = errors.New("existing consumer conflicts with jetfleet's definition")

	// ErrServerTooOld reports a nats-server that lacks a feature the wire
	// contract needs (see [ServerFeatures]); see [ServerTooOldError].
	ErrServerTooOld = errors.New("nats-server too old for jetfleet")

	// ErrNotJetfleetSubject is returned by [Parse] for a subject outside the
	// jf.> namespace or of an unknown shape.
	ErrNotJetfleetSubject = errors.New("not a jetfleet subject")

	// ErrInvalidPartition reports a partition number, set or count that
	// the clean stage cannot have.
	ErrInvalidPartition = errors.New("invalid partition")
)
