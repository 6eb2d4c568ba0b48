package transform_test

// This is the transform step as it was before issue 15 (records decoded
// into maps, encoded by encoding/json), kept as the oracle of
// FuzzTransformOracle: the scanning transform must write every record as
// it did, byte for byte, and fail every record with the same error.

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
	"testing"

	"github.com/expr-lang/expr"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// Handler is the transform step's [workers.Handler] for one dataset. It is
// immutable and safe for concurrent use.
type oldHandler struct {
	ds     *pipeline.Dataset
	tables transform.Tables
	salts  map[*pipeline.Mask]string
	out    string
	// partitions is the clean stage's partition count, for grouping the
	// records of a bulk input per partition.
	partitions int
}

// New builds the transform handler of ds, reading lookup rows from
// tables (nil when ds uses none). Salts named by salt_env are read here.
func oldNew(ds *pipeline.Dataset, tables transform.Tables) (*oldHandler, error) {
	if ds == nil {
		return nil, fmt.Errorf("%w: no dataset", workers.ErrInvalidConfig)
	}
	if err := subjects.ValidateToken("dataset", ds.Name); err != nil {
		return nil, fmt.Errorf("%w: %w", workers.ErrInvalidConfig, err)
	}
	h := &oldHandler{ds: ds, tables: tables, salts: map[*pipeline.Mask]string{}, out: subjects.Clean(ds.Name), partitions: subjects.DefaultPartitions}
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
func (h *oldHandler) withPartitions(n int) *oldHandler {
	c := *h
	c.partitions = max(n, 1)
	return &c
}

// Handle transforms one record and publishes it with its key token
// (jf.clean.<dataset>.<keytoken>), so the stream files it in its key's
// partition. A record the transforms cannot apply to is marked permanent
// for the runtime to dead-letter.
func (h *oldHandler) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	clean, err := h.transform(rec.Data)
	if err != nil {
		return nil, workers.Permanent(err)
	}
	data, err := oldEncode(clean)
	if err != nil {
		return nil, workers.Permanent(err)
	}
	tok := subjects.KeyToken(oldKeyOf(clean, h.ds.Key))
	return []workers.Output{{
		Subject: subjects.CleanKey(h.ds.Name, tok), Data: data,
		Group: strconv.Itoa(subjects.PartitionOf(tok, h.partitions)),
	}}, nil
}

// KeyOf is the text of rec's key field as the aggregator de-duplicates
// on it: a string as is, any other value as its JSON text, "" if absent.
func oldKeyOf(rec pipeline.Record, key string) string {
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
func (h *oldHandler) Transform(data []byte) ([]byte, error) {
	rec, err := h.transform(data)
	if err != nil {
		return nil, err
	}
	return oldEncode(rec)
}

func (h *oldHandler) transform(data []byte) (pipeline.Record, error) {
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
func (h *oldHandler) Apply(rec pipeline.Record) error {
	for _, t := range h.ds.Transforms {
		if err := h.apply(t, rec); err != nil {
			return fmt.Errorf("%w: %s", transform.ErrTransform, err)
		}
	}
	return nil
}

func (h *oldHandler) apply(t *pipeline.Transform, rec pipeline.Record) error {
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
			if err := oldToNumber(rec, f); err != nil {
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
		return oldDerive(t, rec)
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
func oldToNumber(rec pipeline.Record, f string) error {
	v, ok := rec[f]
	if !ok || v == nil {
		return nil
	}
	switch x := v.(type) {
	case json.Number:
		return nil
	case string:
		s := strings.TrimSpace(x)
		if !oldIsJSONNumber(s) {
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
func oldIsJSONNumber(s string) bool {
	if s == "" || !(s[0] == '-' || s[0] >= '0' && s[0] <= '9') {
		return false
	}
	var n json.Number
	return json.Unmarshal([]byte(s), &n) == nil
}

func (h *oldHandler) lookup(l *pipeline.LookupRef, rec pipeline.Record) error {
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

func oldDerive(t *pipeline.Transform, rec pipeline.Record) error {
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

func (h *oldHandler) mask(m *pipeline.Mask, rec pipeline.Record) error {
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
		rec[m.Into] = oldHash(h.salts[m], pipeline.Normalize(s, m.Normalize))
		if !m.Keep && m.Into != m.Field {
			delete(rec, m.Field)
		}
	}
	return nil
}

// Hash is the hex SHA-256 of salt followed by value: what mask with
// action hash writes.
func oldHash(salt, value string) string {
	h := sha256.New()
	h.Write([]byte(salt))
	h.Write([]byte(value))
	return hex.EncodeToString(h.Sum(nil))
}

// Encode writes a record as compact JSON with sorted keys, without
// escaping <, > and & (the output is data, not HTML).
func oldEncode(rec pipeline.Record) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rec); err != nil {
		return nil, fmt.Errorf("%w: encode: %v", transform.ErrTransform, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// FuzzTransformOracle: for the shop pipeline and one with every kind of
// transform, the step writes each record as the pre-issue-15 step did,
// byte for byte, to the same subject and chunk group, and fails the
// records it failed with the same error.
func FuzzTransformOracle(f *testing.F) {
	spec, err := pipeline.Parse("t.yaml", []byte(`name: t
datasets:
  d:
    key: id
    schema: [{name: id, type: VARCHAR}]
    transform:
      - trim: [a, currency]
      - upper: [currency]
      - lower: [b]
      - number: [n, m]
      - timestamp: {fields: [ts, t2], formats: [rfc3339, unix, "02.01.2006 15:04"], timezone: Europe/Berlin}
      - lookup: {table: fx, key: currency, fields: {rate: fx_rate}, missing: default, default: {rate: 0}}
      - derive: {field: x, expr: amount * fx_rate}
      - derive: {field: y, expr: "-(amount + 2) / n - 0.5"}
      - derive: {field: w, expr: "3 * 4 + amount"}
      - derive: {field: z, expr: 'upper(a) + "-" + string(n)'}
      - lookup: {table: n, key: id, fields: [label], missing: pass}
      - mask: {field: email, action: hash, into: email_hash, normalize: [trim, lower]}
      - mask: {field: phone, action: redact}
      - mask: {field: ssn, action: drop}
      - drop: [fx_rate, junk]
      - rename: {old: new}
lookups:
  fx:
    key: currency
    rows: [{currency: USD, rate: 1.0}, {currency: EUR, rate: 1.08}, {currency: "ü", rate: 2}, {currency: BIG, rate: 1e300}]
  n:
    key: id
    rows: [{id: 7, label: seven}, {id: x, label: {nested: [1, "two"]}}]
`))
	require.NoError(f, err)
	shop := examples.Shop()
	type pair struct {
		old *oldHandler
		new *transform.Handler
	}
	var pairs []pair
	for _, s := range []*pipeline.Spec{shop, spec} {
		tables, err := transform.NewStaticTables(s)
		require.NoError(f, err)
		ds := s.Datasets[0]
		oh, err := oldNew(ds, tables)
		require.NoError(f, err)
		nh, err := transform.New(ds, tables)
		require.NoError(f, err)
		pairs = append(pairs, pair{oh, nh}, pair{oh.withPartitions(3), nh.WithPartitions(3)})
	}
	for _, s := range []string{
		`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
		`{"order_id":7,"amount":20,"currency":"EUR","country":"de","ts":"2026-10-01T23:30:00-02:00","note":{"z":1,"a":[true,null]}}`,
		`{"id":"x","a":" k ","b":"ÀB","currency":" usd ","n":" 12.50 ","m":"1e400","ts":1790000000,"t2":"01.07.2026 12:00","amount":3,"email":42,"phone":"555","ssn":"1","junk":1,"old":"o"}`,
		`{"id":7.0,"currency":"BIG","amount":1e10,"n":"0","ts":"yesterday"}`, `{"id":null,"currency":"ü","amount":-0.0,"n":-1,"email":null,"phone":null,"a":"\u2028<&>"}`,
		`{"id":{"k":1},"currency":"XXX","amount":"7"}`, `{"currency":1}`, `{"n":{}}`, `{"email":{"a":1}}`, `[]`, "\xff", `{}`,
		`{"id":"a","a":"x","a":"y","amount":2,"currency":"EUR"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range pairs {
			want, wantErr := p.old.Transform(data)
			got, err := p.new.Transform(data)
			if wantErr != nil {
				require.EqualError(t, err, wantErr.Error())
				continue
			}
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
			wantOut, err := p.old.Handle(context.Background(), workers.Record{Data: data})
			require.NoError(t, err)
			gotOut, err := p.new.Handle(context.Background(), workers.Record{Data: data})
			require.NoError(t, err)
			require.Equal(t, wantOut, gotOut)
		}
	})
}
