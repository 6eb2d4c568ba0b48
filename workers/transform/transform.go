package transform

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

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
	out    string
	// partitions is the clean stage's partition count, for grouping the
	// records of a bulk input per partition.
	partitions int
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
	h := &Handler{ds: ds, tables: tables, salts: map[*pipeline.Mask]string{}, out: subjects.Clean(ds.Name), partitions: subjects.DefaultPartitions}
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
	}
	return h, nil
}

// WithPartitions returns a copy of h for a clean stage of n partitions
// (subjects.StreamOptions.Partitions); the default is
// subjects.DefaultPartitions.
func (h *Handler) WithPartitions(n int) *Handler {
	c := *h
	c.partitions = max(n, 1)
	return &c
}

// Handle transforms one record and publishes it with its key token
// (jf.clean.<dataset>.<keytoken>), so the stream files it in its key's
// partition. A record the transforms cannot apply to is marked permanent
// for the runtime to dead-letter.
func (h *Handler) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	clean, err := h.transform(rec.Data)
	if err != nil {
		return nil, workers.Permanent(err)
	}
	data, err := Encode(clean)
	if err != nil {
		return nil, workers.Permanent(err)
	}
	tok := subjects.KeyToken(KeyOf(clean, h.ds.Key))
	return []workers.Output{{
		Subject: subjects.CleanKey(h.ds.Name, tok), Data: data,
		Group: strconv.Itoa(subjects.PartitionOf(tok, h.partitions)),
	}}, nil
}

// KeyOf is the text of rec's key field as the aggregator de-duplicates
// on it: a string as is, any other value as its JSON text, "" if absent.
func KeyOf(rec pipeline.Record, key string) string {
	switch v := rec[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if enc.Encode(v) != nil {
			return ""
		}
		return string(bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}))
	}
}

// Transform applies the dataset's transforms to one record's bytes and
// returns the clean record (a JSON object, keys sorted).
func (h *Handler) Transform(data []byte) ([]byte, error) {
	rec, err := h.transform(data)
	if err != nil {
		return nil, err
	}
	return Encode(rec)
}

func (h *Handler) transform(data []byte) (pipeline.Record, error) {
	rec, err := pipeline.DecodeRecord(data)
	if err != nil {
		return nil, err
	}
	if err := h.Apply(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// Apply runs the transforms on rec in place.
func (h *Handler) Apply(rec pipeline.Record) error {
	for _, t := range h.ds.Transforms {
		if err := h.apply(t, rec); err != nil {
			return fmt.Errorf("%w: %s", ErrTransform, err)
		}
	}
	return nil
}

func (h *Handler) apply(t *pipeline.Transform, rec pipeline.Record) error {
	switch t.Op {
	case pipeline.OpTrim, pipeline.OpUpper, pipeline.OpLower:
		norm := []pipeline.Normalizer{pipeline.Normalizer(t.Op)}
		for _, f := range t.Fields {
			v, ok := rec[f]
			if !ok || v == nil {
				continue
			}
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s %s: is %s, want a string", t.Op, f, pipeline.Kind(v))
			}
			rec[f] = pipeline.Normalize(s, norm)
		}
	case pipeline.OpNumber:
		for _, f := range t.Fields {
			if err := toNumber(rec, f); err != nil {
				return err
			}
		}
	case pipeline.OpTimestamp:
		for _, f := range t.Fields {
			v, ok := rec[f]
			if !ok || v == nil {
				continue
			}
			ts, err := t.Time.Parse(v)
			if err != nil {
				return fmt.Errorf("timestamp %s: %v", f, err)
			}
			rec[f] = pipeline.FormatTime(ts)
		}
	case pipeline.OpLookup:
		return h.lookup(t.Lookup, rec)
	case pipeline.OpDerive:
		return derive(t, rec)
	case pipeline.OpMask:
		return h.mask(t.Mask, rec)
	case pipeline.OpDrop:
		for _, f := range t.Fields {
			delete(rec, f)
		}
	case pipeline.OpRename:
		for _, r := range t.Renames {
			if v, ok := rec[r.From]; ok {
				delete(rec, r.From)
				rec[r.To] = v
			}
		}
	}
	return nil
}

// toNumber turns a numeric string into a JSON number, keeping its digits
// (a 20-digit id stays exact). Numbers and nulls are left alone.
func toNumber(rec pipeline.Record, f string) error {
	v, ok := rec[f]
	if !ok || v == nil {
		return nil
	}
	switch x := v.(type) {
	case json.Number:
		return nil
	case string:
		s := strings.TrimSpace(x)
		if !isJSONNumber(s) {
			return fmt.Errorf("number %s: %s is not a number", f, pipeline.Describe(x))
		}
		if _, ok := pipeline.AsFloat(json.Number(s)); !ok {
			return fmt.Errorf("number %s: %s is out of range", f, pipeline.Describe(x))
		}
		rec[f] = json.Number(s)
		return nil
	}
	return fmt.Errorf("number %s: is %s, want a number or numeric string", f, pipeline.Kind(v))
}

// isJSONNumber reports whether s is a number literal as JSON writes it
// (no hex, no '+', no "Inf"), so it can be emitted as is.
func isJSONNumber(s string) bool {
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

func (h *Handler) lookup(l *pipeline.LookupRef, rec pipeline.Record) error {
	kv, present := rec[l.Key]
	key := pipeline.KeyString(kv)
	row, ok := map[string]any(nil), false
	if present && kv != nil {
		row, ok = h.tables.Row(l.Table, key)
	}
	if !ok {
		switch l.Missing {
		case pipeline.MissingPass:
			return nil
		case pipeline.MissingDefault:
			row = l.Default
		default:
			if !present || kv == nil {
				return fmt.Errorf("lookup %s: key field %s is missing", l.Table, l.Key)
			}
			return fmt.Errorf("lookup %s: no row for %s=%s", l.Table, l.Key, pipeline.Describe(kv))
		}
	}
	for _, f := range l.Fields {
		if v, ok := row[f.From]; ok {
			rec[f.To] = v
		}
	}
	return nil
}

func derive(t *pipeline.Transform, rec pipeline.Record) error {
	out, err := expr.Run(t.Program, pipeline.ExprEnv(rec))
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n") // the rest is the source and a caret
		return fmt.Errorf("derive %s: %s", t.Field, msg)
	}
	switch x := out.(type) {
	case nil:
		delete(rec, t.Field)
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
	rec[t.Field] = out
	return nil
}

func (h *Handler) mask(m *pipeline.Mask, rec pipeline.Record) error {
	v, ok := rec[m.Field]
	if !ok {
		return nil
	}
	switch m.Action {
	case pipeline.MaskDrop:
		delete(rec, m.Field)
	case pipeline.MaskRedact:
		if v != nil {
			rec[m.Field] = m.With
		}
	case pipeline.MaskHash:
		if v == nil {
			delete(rec, m.Field)
			return nil
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		default:
			return fmt.Errorf("mask %s: is %s, want a string or number to hash", m.Field, pipeline.Kind(v))
		}
		rec[m.Into] = Hash(h.salts[m], pipeline.Normalize(s, m.Normalize))
		if !m.Keep && m.Into != m.Field {
			delete(rec, m.Field)
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

// Encode writes a record as compact JSON with sorted keys, without
// escaping <, > and & (the output is data, not HTML).
func Encode(rec pipeline.Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("%w: encode: %v", ErrTransform, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}
