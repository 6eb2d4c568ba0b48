package transform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// Handler is the transform step's [workers.Handler] for one dataset. It is
// immutable and safe for concurrent use.
type Handler struct {
	ds     *pipeline.Dataset
	tables Tables
	salts  map[*pipeline.Mask]string
	ops    []op
	out    string
	// partitions is the clean stage's partition count, for grouping the
	// records of a bulk input per partition.
	partitions int
	// buckets holds, per key bucket, the subject and group of its
	// records, made on first use (see route).
	buckets *[subjects.KeyBuckets]atomic.Pointer[route]
	// scratch holds one record's fields and buffers, so that a record
	// costs no allocation beyond its output.
	scratch *sync.Pool
	// contract judges the fields outside the schema.
	contract *contract
}

// route is where the records of one key bucket go.
type route struct {
	subject string // jf.clean.<dataset>.<keytoken>
	group   string // its partition, for chunking bulk outputs
}

// op is one transform, ready to run.
type op struct {
	*pipeline.Transform
	norm  []pipeline.Normalizer // of trim, upper, lower
	arith *arith                // of a derive that is plain arithmetic, else nil
}

// state is the memory of one record's transform; a handler pools it.
type state struct {
	fields pipeline.Fields
	// arena holds the strings and numbers the transforms make; values
	// view it until the record is encoded.
	arena  []byte
	norm   []byte
	hashIn []byte
	out    []byte
	// unknown holds the names of fields outside the schema.
	unknown []string
	// slab is where clean records are cut from (see keepOutput).
	slab []byte
}

// New builds the transform handler of ds, reading lookup rows from
// tables (nil when ds uses none). Salts named by salt_env are read here.
func New(ds *pipeline.Dataset, tables Tables) (*Handler, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no dataset", workers.ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("dataset", ds.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
	}
	h := &Handler{
		ds: ds, tables: tables, salts: map[*pipeline.Mask]string{}, out: subjects.Clean(ds.Name),
		partitions: subjects.DefaultPartitions,
		buckets:    new([subjects.KeyBuckets]atomic.Pointer[route]),
		scratch:    &sync.Pool{New: func() any { return new(state) }},
		contract:   newContract(ds),
	}
	for _, t := range ds.Transforms {
		switch {
		case t.Op == pipeline.OpLookup && tables == nil:
			return nil, fmt.Errorf("%w: dataset %s looks up table %s but no tables were given", workers.ErrInvalidConfig, ds.Name, t.Lookup.Table)
		case t.Op == pipeline.OpMask && t.Mask.SaltEnv != "":
			salt, ok := os.LookupEnv(t.Mask.SaltEnv)
			if !ok {
				return nil, fmt.Errorf("%w: %s: mask of %s: environment variable %s (the salt) is not set", workers.ErrInvalidConfig, t.Pos, t.Mask.Field, t.Mask.SaltEnv)
			}
			h.salts[t.Mask] = salt
		case t.Op == pipeline.OpMask:
			h.salts[t.Mask] = t.Mask.Salt
		}
		o := op{Transform: t}
		switch t.Op {
		case pipeline.OpTrim, pipeline.OpUpper, pipeline.OpLower:
			// Case and trim ops on the same fields, one after the other
			// (trim: [a, b], then upper: [a, b]) run as one: each field is
			// normalised once. The first op that fails a field still names
			// itself, as every op fails the first non-string field.
			if n := len(h.ops); n > 0 && h.ops[n-1].norm != nil && slices.Equal(h.ops[n-1].Fields, t.Fields) {
				h.ops[n-1].norm = append(h.ops[n-1].norm, pipeline.Normalizer(t.Op))
				continue
			}
			o.norm = []pipeline.Normalizer{pipeline.Normalizer(t.Op)}
		case pipeline.OpDerive:
			if t.Program != nil {
				o.arith = compileArith(t.Program.Node())
			}
		}
		h.ops = append(h.ops, o)
	}
	return h, nil
}

// ContractCounts reports what the dataset's schema contract did to
// fields outside the schema (workers.ContractReporter); nil until a
// record had one.
func (h *Handler) ContractCounts() *subjects.ContractCounts { return h.contract.snapshot() }

// WithPartitions returns a copy of h for a clean stage of n partitions
// (subjects.StreamOptions.Partitions); the default is
// subjects.DefaultPartitions.
func (h *Handler) WithPartitions(n int) *Handler {
	c := *h
	c.partitions = max(n, 1)
	c.buckets = new([subjects.KeyBuckets]atomic.Pointer[route])
	return &c
}

// Handle transforms one record and publishes it with its key token
// (jf.clean.<dataset>.<keytoken>), so the stream files it in its key's
// partition. A record the transforms cannot apply to is marked permanent
// for the runtime to dead-letter.
func (h *Handler) Handle(ctx context.Context, rec workers.Record) ([]workers.Output, error) {
	return h.HandleAppend(ctx, &rec, nil)
}

// HandleAppend is Handle appending to out (see workers.AppendHandler).
func (h *Handler) HandleAppend(_ context.Context, rec *workers.Record, out []workers.Output) ([]workers.Output, error) {
	st := h.scratch.Get().(*state)
	defer h.scratch.Put(st)
	data, err := h.transform(st, rec.Data)
	if err != nil {
		var empty *tableEmptyError
		if errors.As(err, &empty) {
			return out, workers.RetryAfter(emptyTableRetry, err)
		}
		return out, workers.Permanent(err)
	}
	r := h.route(subjects.KeyBucket(keyOf(&st.fields, h.ds.Key, &st.norm)))
	return append(out, workers.Output{Subject: r.subject, Data: data, Group: r.group}), nil
}

// route is where the records of a key bucket go.
func (h *Handler) route(bucket int) *route {
	if r := h.buckets[bucket].Load(); r != nil {
		return r
	}
	tok := subjects.BucketToken(bucket)
	r := &route{subject: subjects.CleanKey(h.ds.Name, tok), group: strconv.Itoa(subjects.PartitionOf(tok, h.partitions))}
	h.buckets[bucket].Store(r)
	return r
}

// KeyOf is the text of rec's key field as the aggregator de-duplicates
// on it: a string as is, any other value as its JSON text, "" if absent.
func KeyOf(rec pipeline.Record, key string) string {
	var f pipeline.Fields
	f.FromRecord(rec)
	var buf []byte
	return strings.Clone(keyOf(&f, key, &buf))
}

// keyOf is KeyOf of scanned fields; the text may view the record or buf.
func keyOf(f *pipeline.Fields, key string, buf *[]byte) string {
	v, ok := f.Get(key)
	switch {
	case !ok || v.Kind() == pipeline.KindNull:
		return ""
	case v.Kind() == pipeline.KindString:
		return v.Str()
	}
	out, err := v.AppendJSON((*buf)[:0])
	if err != nil {
		return ""
	}
	*buf = out
	return string(out)
}

// Transform applies the dataset's transforms to one record's bytes and
// returns the clean record (a JSON object, keys sorted).
func (h *Handler) Transform(data []byte) ([]byte, error) {
	st := h.scratch.Get().(*state)
	defer h.scratch.Put(st)
	return h.transform(st, data)
}

// transform decodes data once into st's fields, applies the transforms
// to them and writes the clean record: a new slice of its exact size.
func (h *Handler) transform(st *state, data []byte) ([]byte, error) {
	if err := st.fields.Scan(data); err != nil {
		return nil, err
	}
	st.arena = st.arena[:0]
	if err := h.apply(st); err != nil {
		return nil, err
	}
	if err := h.contract.apply(&st.fields, &st.unknown); err != nil {
		return nil, err
	}
	out, err := st.fields.AppendJSON(st.out[:0])
	st.out = out
	if err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrTransform, err)
	}
	return st.keepOutput(out), nil
}

// slabSize is the memory clean records are cut from: one allocation for
// many records instead of one each. A slab is garbage once the records
// cut from it are published.
const slabSize = 32 << 10

// keepOutput copies a clean record to memory of its own, cut from the
// state's slab.
func (st *state) keepOutput(out []byte) []byte {
	if len(out) > slabSize/4 {
		return bytes.Clone(out)
	}
	if cap(st.slab)-len(st.slab) < len(out) {
		st.slab = make([]byte, 0, slabSize)
	}
	start := len(st.slab)
	st.slab = append(st.slab, out...)
	return st.slab[start:len(st.slab):len(st.slab)]
}

// Apply runs the transforms on rec in place.
func (h *Handler) Apply(rec pipeline.Record) error {
	st := h.scratch.Get().(*state)
	defer h.scratch.Put(st)
	st.fields.FromRecord(rec)
	st.arena = st.arena[:0]
	if err := h.apply(st); err != nil {
		return err
	}
	clear(rec)
	for _, f := range st.fields.All() {
		v := f.Value.Any()
		if s, ok := v.(string); ok {
			v = strings.Clone(s) // it may view the arena, which is reused
		}
		rec[f.Name] = v
	}
	return nil
}

func (h *Handler) apply(st *state) error {
	for i := range h.ops {
		if err := h.applyOne(st, &h.ops[i]); err != nil {
			if empty := (*tableEmptyError)(nil); errors.As(err, &empty) {
				return err // not the record's fault: HandleAppend retries it
			}
			return fmt.Errorf("%w: %s", ErrTransform, err)
		}
	}
	return nil
}

func (h *Handler) applyOne(st *state, t *op) error {
	f := &st.fields
	switch t.Op {
	case pipeline.OpTrim, pipeline.OpUpper, pipeline.OpLower:
		for _, name := range t.Fields {
			v, ok := f.Get(name)
			if !ok || v.Kind() == pipeline.KindNull {
				continue
			}
			if v.Kind() != pipeline.KindString {
				return fmt.Errorf("%s %s: is %s, want a string", t.Op, name, v.Kind().Name())
			}
			s := v.Str()
			var norm string
			norm, st.norm = pipeline.AppendNormalize(st.norm, s, t.norm)
			if norm != s {
				f.Set(name, st.keep(norm))
			}
		}
	case pipeline.OpNumber:
		for _, name := range t.Fields {
			if err := st.toNumber(name); err != nil {
				return err
			}
		}
	case pipeline.OpTimestamp:
		for _, name := range t.Fields {
			v, ok := f.Get(name)
			if !ok || v.Kind() == pipeline.KindNull {
				continue
			}
			ts, ok := t.Time.ParseValue(v)
			if !ok {
				return fmt.Errorf("timestamp %s: %s", name, t.Time.ErrorText(v))
			}
			start := len(st.arena)
			st.arena = pipeline.AppendTime(st.arena, ts)
			f.Set(name, pipeline.StringView(st.arena[start:]))
		}
	case pipeline.OpLookup:
		return h.lookup(t.Lookup, f)
	case pipeline.OpDerive:
		return st.derive(t)
	case pipeline.OpMask:
		return h.mask(st, t.Mask)
	case pipeline.OpDrop:
		for _, name := range t.Fields {
			f.Delete(name)
		}
	case pipeline.OpRename:
		for _, r := range t.Renames {
			if v, ok := f.Get(r.From); ok {
				f.Delete(r.From)
				f.Set(r.To, v)
			}
		}
	}
	return nil
}

// keep copies a string the transforms made (which may view a scratch
// buffer) to the arena and returns it as a value.
func (st *state) keep(s string) pipeline.Value {
	start := len(st.arena)
	st.arena = append(st.arena, s...)
	return pipeline.StringView(st.arena[start:])
}

// toNumber turns a numeric string into a JSON number, keeping its digits
// (a 20-digit id stays exact). Numbers and nulls are left alone.
func (st *state) toNumber(name string) error {
	v, ok := st.fields.Get(name)
	if !ok || v.Kind() == pipeline.KindNull || v.IsJSONNumber() {
		return nil
	}
	if v.Kind() != pipeline.KindString {
		return fmt.Errorf("number %s: is %s, want a number or numeric string", name, v.Kind().Name())
	}
	s := strings.TrimSpace(v.Str())
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') || !isJSONNumber(s) {
		return fmt.Errorf("number %s: %s is not a number", name, v.Describe())
	}
	if _, ok := pipeline.AsFloat(json.Number(s)); !ok {
		return fmt.Errorf("number %s: %s is out of range", name, v.Describe())
	}
	start := len(st.arena)
	st.arena = append(st.arena, s...)
	st.fields.Set(name, pipeline.NumberValue(st.arena[start:]))
	return nil
}

// isJSONNumber reports whether s is a number literal as JSON writes it
// (no hex, no '+', no "Inf"), so it can be emitted as is.
func isJSONNumber(s string) bool {
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

// rowCounter is a [Tables] that knows how many rows a table holds now:
// one loaded at run time (KVTables), which can be empty for a while.
type rowCounter interface {
	Len(table string) int
}

// emptyTableRetry is how soon a record waiting for an empty lookup table
// is tried again.
const emptyTableRetry = 2 * time.Second

// tableEmptyError is a lookup against a table that holds no row at all:
// being (re)loaded, most likely (purged, then put back), so the record is
// retried rather than dead-lettered as a key the table lacks; past
// MaxDeliver it is dead-lettered with this reason.
type tableEmptyError struct{ table string }

func (e *tableEmptyError) Error() string {
	return fmt.Sprintf("lookup %s: the table is empty (not loaded yet, or being reloaded)", e.table)
}

func (h *Handler) lookup(l *pipeline.LookupRef, f *pipeline.Fields) error {
	kv, present := f.Get(l.Key)
	var (
		row map[string]any
		ok  bool
	)
	if present && kv.Kind() != pipeline.KindNull {
		key := kv.Str() // a view: the map lookup keeps nothing
		if kv.Kind() != pipeline.KindString {
			key = pipeline.KeyString(kv.Any())
		}
		row, ok = h.tables.Row(l.Table, key)
	}
	if !ok {
		switch l.Missing {
		case pipeline.MissingPass:
			return nil
		case pipeline.MissingDefault:
			row = l.Default
		default:
			if !present || kv.Kind() == pipeline.KindNull {
				return fmt.Errorf("lookup %s: key field %s is missing", l.Table, l.Key)
			}
			if c, ok := h.tables.(rowCounter); ok && c.Len(l.Table) == 0 {
				return &tableEmptyError{table: l.Table}
			}
			return fmt.Errorf("lookup %s: no row for %s=%s", l.Table, l.Key, kv.Describe())
		}
	}
	for _, c := range l.Fields {
		if v, ok := row[c.From]; ok {
			f.Set(c.To, pipeline.ValueOf(v))
		}
	}
	return nil
}

// derive sets a field to an expression's result: plain arithmetic over
// the record's numbers directly, anything else (or arithmetic over
// anything but float64s) through expr with the record's fields as
// variables, as ExprEnv gives them, so the result is the same either way.
func (st *state) derive(t *op) error {
	if t.arith != nil {
		if x, ok := t.arith.eval(&st.fields); ok {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fmt.Errorf("derive %s: result %v is not a finite number", t.Field, x)
			}
			st.fields.Set(t.Field, pipeline.FloatValue(x))
			return nil
		}
	}
	out, err := expr.Run(t.Program, st.fields.Env())
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n") // the rest is the source and a caret
		return fmt.Errorf("derive %s: %s", t.Field, msg)
	}
	switch x := out.(type) {
	case nil:
		st.fields.Delete(t.Field)
		return nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("derive %s: result %v is not a finite number", t.Field, x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("derive %s: result %v is not a finite number", t.Field, x)
		}
	}
	st.fields.Set(t.Field, pipeline.ValueOf(out))
	return nil
}

func (h *Handler) mask(st *state, m *pipeline.Mask) error {
	f := &st.fields
	v, ok := f.Get(m.Field)
	if !ok {
		return nil
	}
	switch m.Action {
	case pipeline.MaskDrop:
		f.Delete(m.Field)
	case pipeline.MaskRedact:
		if v.Kind() != pipeline.KindNull {
			f.Set(m.Field, pipeline.StringValue(m.With))
		}
	case pipeline.MaskHash:
		if v.Kind() == pipeline.KindNull {
			f.Delete(m.Field)
			return nil
		}
		var s string
		switch {
		case v.Kind() == pipeline.KindString:
			s = v.Str()
		case v.IsJSONNumber():
			s = v.Literal()
		default:
			return fmt.Errorf("mask %s: is %s, want a string or number to hash", m.Field, v.Kind().Name())
		}
		s, st.norm = pipeline.AppendNormalize(st.norm, s, m.Normalize)
		st.hashIn = append(append(st.hashIn[:0], h.salts[m]...), s...)
		sum := sha256.Sum256(st.hashIn)
		start := len(st.arena)
		st.arena = hex.AppendEncode(st.arena, sum[:])
		f.Set(m.Into, pipeline.StringView(st.arena[start:]))
		if !m.Keep && m.Into != m.Field {
			f.Delete(m.Field)
		}
	}
	return nil
}

// Hash is the hex SHA-256 of salt followed by value: what mask with
// action hash writes.
func Hash(salt, value string) string {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte(value))
	return hex.EncodeToString(h.Sum(nil))
}
