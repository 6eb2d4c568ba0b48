package validate

import (
	"context"
	"fmt"
	"sync"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Handler is the validate step's [workers.Handler] for one dataset. It is
// immutable and safe for concurrent use.
type Handler struct {
	ds    *pipeline.Dataset
	rules []rule
	out   string
	// scratch holds the decoded record and message buffers of one check,
	// so that a valid record costs no allocation.
	scratch sync.Pool
}

// New builds the validate handler of ds.
func New(ds *pipeline.Dataset) (*Handler, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no dataset", workers.ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("dataset", ds.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
	}
	h := &Handler{ds: ds, rules: compile(ds.Rules), out: subjects.Valid(ds.Name)}
	h.scratch.New = func() any { return new(scratch) }
	return h, nil
}

// Handle forwards a valid record (unchanged, or mapped from its source
// when the dataset has sources), and marks anything else permanent, with
// the reason, for the runtime to dead-letter.
func (h *Handler) Handle(ctx context.Context, rec workers.Record) ([]workers.Output, error) {
	return h.HandleAppend(ctx, &rec, nil)
}

// HandleAppend is Handle appending to out (see workers.AppendHandler).
func (h *Handler) HandleAppend(_ context.Context, rec *workers.Record, out []workers.Output) ([]workers.Output, error) {
	data, err := h.Valid(rec.Data)
	if err != nil {
		if _, ok := err.(*Error); ok { //nolint:errorlint // Valid returns it as it is
			return out, err // permanent by nature
		}
		return out, workers.Permanent(err)
	}
	return append(out, workers.Output{Subject: h.out, Data: data}), nil
}

// Validate checks one record's bytes: a UTF-8 JSON object, matching one of
// the dataset's sources if it has any, passing every rule. The error is a
// pipeline decode error, one matching [pipeline.ErrNoSource], or an [*Error].
func (h *Handler) Validate(data []byte) error {
	_, err := h.Valid(data)
	return err
}

// Valid validates one record's bytes like [Handler.Validate] and returns
// what the step forwards: data itself, or for a dataset with sources the
// record mapped to the dataset's shape (keys sorted).
//
// The record is decoded once into the fields the rules read, viewing
// data (pipeline.Fields); only a record that fails allocates, for its
// reason.
func (h *Handler) Valid(data []byte) ([]byte, error) {
	sc := h.scratch.Get().(*scratch)
	defer h.scratch.Put(sc)
	if len(h.ds.Sources) > 0 {
		return h.validSource(sc, data)
	}
	if err := sc.fields.Scan(data); err != nil {
		return nil, err
	}
	var e *Error
	if sc.check(h.rules, &sc.fields, &e); e != nil {
		return nil, e
	}
	return data, nil
}

// validSource maps a record of a dataset with sources to the dataset's
// shape, checks that, and encodes it.
func (h *Handler) validSource(sc *scratch, data []byte) ([]byte, error) {
	rec, err := pipeline.DecodeRecord(data)
	if err != nil {
		return nil, err
	}
	mapped, _, err := h.ds.FromSource(rec)
	if err != nil {
		return nil, err
	}
	sc.fields.FromRecord(mapped)
	var e *Error
	if sc.check(h.rules, &sc.fields, &e); e != nil {
		return nil, e
	}
	return pipeline.EncodeRecord(mapped)
}
