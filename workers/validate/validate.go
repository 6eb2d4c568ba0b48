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
	return &Handler{rules: ds.Rules, out: subjects.Valid(ds.Name)}, nil
}

// Handle forwards a valid record unchanged, and marks anything else
// permanent, with the reason, for the runtime to dead-letter.
func (h *Handler) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	if err := h.Validate(rec.Data); err != nil {
		return nil, workers.Permanent(err)
	}
	return []workers.Output{{Subject: h.out, Data: rec.Data}}, nil
}

// Validate checks one record's bytes: a UTF-8 JSON object passing every
// rule. The error is a pipeline decode error or an [*Error].
func (h *Handler) Validate(data []byte) error {
	rec, err := pipeline.DecodeRecord(data)
	if err != nil {
		return err
	}
	if fails := Check(h.rules, rec); len(fails) > 0 {
		return &Error{Failures: fails}
	}
	return nil
}
