package validate

import (
	"context"
	"fmt"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Handler is the validate step's [workers.Handler] for one dataset. It is
// immutable and safe for concurrent use.
type Handler struct {
	ds    *pipeline.Dataset
	rules []*pipeline.Rule
	out   string
}

// New builds the validate handler of ds.
func New(ds *pipeline.Dataset) (*Handler, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no dataset", workers.ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("dataset", ds.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
	}
	return &Handler{ds: ds, rules: ds.Rules, out: subjects.Valid(ds.Name)}, nil
}

// Handle forwards a valid record (unchanged, or mapped from its source
// when the dataset has sources), and marks anything else permanent, with
// the reason, for the runtime to dead-letter.
func (h *Handler) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	data, err := h.Valid(rec.Data)
	if err != nil {
		return nil, workers.Permanent(err)
	}
	return []workers.Output{{Subject: h.out, Data: data}}, nil
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
func (h *Handler) Valid(data []byte) ([]byte, error) {
	rec, err := pipeline.DecodeRecord(data)
	if err != nil {
		return nil, err
	}
	mapped, _, err := h.ds.FromSource(rec)
	if err != nil {
		return nil, err
	}
	if fails := Check(h.rules, mapped); len(fails) > 0 {
		return nil, &Error{Failures: fails}
	}
	if len(h.ds.Sources) == 0 {
		return data, nil
	}
	return pipeline.EncodeRecord(mapped)
}
