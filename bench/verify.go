package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/marts/query"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
)

// cleanRecords is the dataset's JF_CLEAN stream, read back.
type cleanRecords struct {
	lines    [][]byte
	records  int // lines, duplicates of a key included (bulk mode)
	distinct int // distinct keys
}

// readClean reads every clean record of ds: the fleet's own output, which
// the batch baseline turns into the expected marts.
func readClean(ctx context.Context, js jetstream.JetStream, ds *pipeline.Dataset) (cleanRecords, error) {
	var out cleanRecords
	s, err := js.Stream(ctx, subjects.StreamClean)
	if err != nil {
		return out, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return out, err
	}
	if info.State.Msgs == 0 {
		return out, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: subjects.CleanFilters(ds.Name)})
	if err != nil {
		return out, err
	}
	it, err := c.Messages(jetstream.PullMaxMessages(1024))
	if err != nil {
		return out, err
	}
	defer it.Stop()
	keys := map[string]struct{}{}
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return out, fmt.Errorf("read %s: %w", subjects.StreamClean, err)
		}
		for line := range bytes.SplitSeq(m.Data(), []byte{'\n'}) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var rec map[string]json.RawMessage
			if err := json.Unmarshal(line, &rec); err != nil {
				return out, fmt.Errorf("clean record %q: %w", line, err)
			}
			out.lines = append(out.lines, line)
			keys[string(rec[ds.Key])] = struct{}{}
		}
		meta, err := m.Metadata()
		if err != nil {
			return out, err
		}
		if meta.NumPending == 0 {
			break
		}
	}
	out.records, out.distinct = len(out.lines), len(keys)
	return out, nil
}

// checkCounts accounts for every published record: clean + dead-lettered
// + duplicates = published, each equal to what the generator made.
func checkCounts(r *Result, clean cleanRecords, prog marts.Progress) []string {
	var out []string
	check := func(what string, got, want int64) {
		if got != want {
			out = append(out, fmt.Sprintf("%s: got %d, want %d", what, got, want))
		}
	}
	check("clean records (distinct keys)", r.Observed.Valid, r.Generated.Valid)
	check("dead letters", r.Observed.Invalid, r.Generated.Invalid)
	check("duplicates", r.Observed.Duplicate, r.Generated.Duplicate)
	check("records in the aggregator's state", prog.Records, int64(clean.distinct))
	check("duplicates dropped by the aggregator", prog.Duplicates, int64(clean.records-clean.distinct))
	return out
}

// compareMarts reads every mart of ds through marts/query and compares it
// row by row with expected.
func compareMarts(ctx context.Context, dataDir string, spec *pipeline.Spec, ds string, expected map[string][][]any) ([]MartCheck, []string, error) {
	eng, err := query.Open(ctx, query.Config{DataDir: dataDir})
	if err != nil {
		return nil, nil, err
	}
	defer eng.Close()
	var (
		checks []MartCheck
		mism   []string
	)
	for _, m := range spec.Marts {
		if m.Dataset != ds {
			continue
		}
		res, err := eng.Query(ctx, fmt.Sprintf("SELECT * FROM %q ORDER BY ALL", m.Name))
		if err != nil {
			return nil, nil, fmt.Errorf("read mart %s: %w", m.Name, err)
		}
		want := expected[m.Name]
		diff := diffRows(res.Rows, want)
		checks = append(checks, MartCheck{Name: m.Name, Rows: len(res.Rows), Expected: len(want), Equal: diff == ""})
		if diff != "" {
			mism = append(mism, fmt.Sprintf("mart %s: %s", m.Name, diff))
		}
	}
	return checks, mism, nil
}

// diffRows says where got and want first differ, "" if they are equal.
// Doubles compare to 1e-9 relative: a sum's last bits depend on the order
// DuckDB adds in, which differs between one batch and many flushes.
func diffRows(got, want [][]any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d rows, want %d", len(got), len(want))
	}
	for i := range got {
		if len(got[i]) != len(want[i]) {
			return fmt.Sprintf("row %d: %d columns, want %d", i, len(got[i]), len(want[i]))
		}
		for j := range got[i] {
			if !sameValue(got[i][j], want[i][j]) {
				return fmt.Sprintf("row %d column %d: %v, want %v (row %v, want %v)", i, j, got[i][j], want[i][j], got[i], want[i])
			}
		}
	}
	return ""
}

func sameValue(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && (x == y || math.Abs(x-y) <= 1e-9*math.Max(1, math.Max(math.Abs(x), math.Abs(y))))
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return reflect.DeepEqual(a, b)
}

// ExpectedMarts computes ds's marts as one batch DuckDB job over the clean
// records in JF_CLEAN (de-duplicated on the dataset's key), in dir: the
// marts a fleet that consumed the same stream must equal. It returns the
// distinct records too.
func ExpectedMarts(ctx context.Context, js jetstream.JetStream, spec *pipeline.Spec, ds *pipeline.Dataset, dir string) (map[string][][]any, int, error) {
	clean, err := readClean(ctx, js, ds)
	if err != nil {
		return nil, 0, err
	}
	expected, _, err := batchMarts(ctx, filepath.Join(dir, "clean.ndjson"), clean.lines, spec, ds)
	return expected, clean.distinct, err
}

// CompareMarts reads ds's marts under dataDir and says how each differs
// from expected (nothing when they are equal).
func CompareMarts(ctx context.Context, dataDir string, spec *pipeline.Spec, ds string, expected map[string][][]any) ([]string, error) {
	_, mism, err := compareMarts(ctx, dataDir, spec, ds, expected)
	return mism, err
}
