package transform

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Rekey is the handler of the rekey step: it gives a clean record
// published without a key token (jf.clean.<dataset>, as a foreign
// transform step may publish it) its token, so the stream files it in its
// key's partition like every other record. The record's bytes pass
// unchanged.
//
// Without it, partition 0's consumer and every whole-dataset consumer
// would need a second filter subject for the bare subject, and
// nats-server serves multi-filter consumers far slower than single-filter
// ones (35 times slower catching up on a backlog, measured).
type Rekey struct {
	ds         string
	key        string
	partitions int
	scratch    *sync.Pool // of *state
}

// NewRekey builds the rekey handler of dataset ds for a clean stage of n
// partitions.
func NewRekey(ds *pipeline.Dataset, n int) (*Rekey, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no dataset", workers.ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("dataset", ds.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
	}
	return &Rekey{ds: ds.Name, key: ds.Key, partitions: max(n, 1), scratch: &sync.Pool{New: func() any { return new(state) }}}, nil
}

// Handle republishes one record under its key token. A record that is not
// a JSON object has no key: it is marked permanent for the runtime to
// dead-letter.
func (r *Rekey) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	st := r.scratch.Get().(*state)
	defer r.scratch.Put(st)
	if err := st.fields.Scan(rec.Data); err != nil {
		return nil, workers.Permanent(err)
	}
	tok := subjects.KeyToken(keyOf(&st.fields, r.key, &st.norm))
	return []workers.Output{{
		Subject: subjects.CleanKey(r.ds, tok), Data: rec.Data,
		Group: strconv.Itoa(subjects.PartitionOf(tok, r.partitions)),
	}}, nil
}
