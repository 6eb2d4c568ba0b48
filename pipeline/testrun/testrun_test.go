package testrun_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/metrics"
	"github.com/jetfleet/jetfleet/pipeline/testrun"
)

func run(t *testing.T, path string) []testrun.Result {
	t.Helper()
	f, err := testrun.Load(path)
	require.NoError(t, err)
	r := testrun.New(testrun.Config{Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), TempDir: t.TempDir()})
	return r.RunFile(t.Context(), f, nil)
}

// TestContracts runs each schema contract on drifting records end to end
// (testdata/contracts) and checks the decisions are counted per dataset
// and field.
func TestContracts(t *testing.T) {
	t.Parallel()
	count := func(ds, field, decision string) float64 {
		return testutil.ToFloat64(metrics.ContractFields.WithLabelValues(ds, field, decision))
	}
	before := map[string]float64{}
	keys := [][3]string{
		{"t_evolve", "note", "kept"},
		{"t_evolve", "extra", "kept"},
		{"t_discard", "note", "dropped"},
		{"t_discard", "extra", "dropped"},
		{"t_freeze", "note", "rejected"},
		{"t_rows", "extra", "rejected"},
	}
	for _, k := range keys {
		before[strings.Join(k[:], "/")] = count(k[0], k[1], k[2])
	}
	results := run(t, "testdata/contracts/pipeline.test.yaml")
	require.Len(t, results, 4)
	for _, res := range results {
		require.True(t, res.Passed, res.Text())
	}
	want := map[string]float64{
		"t_evolve/note/kept": 2, "t_evolve/extra/kept": 1,
		"t_discard/note/dropped": 2, "t_discard/extra/dropped": 1,
		"t_freeze/note/rejected": 2, "t_rows/extra/rejected": 1,
	}
	for _, k := range keys {
		name := strings.Join(k[:], "/")
		// At least: a redelivered record is judged again.
		require.GreaterOrEqual(t, count(k[0], k[1], k[2])-before[name], want[name], name)
	}
}

// TestLoadErrors: a test file that would check nothing, or names a key
// wrongly, is refused with its file and line.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, yaml, want string }{
		{"no expectations", "cases:\n  - name: x\n    input: [{records: [{a: 1}]}]\n", "pipeline.test.yaml:2: case \"x\": neither expect nor golden"},
		{"misspelt key", "cases:\n  - name: x\n    input: [{records: [{a: 1}]}]\n    expect: {clen: {}}\n", "field clen not found"},
		{"two inputs in one", "cases:\n  - name: x\n    input: [{records: [{a: 1}], file: a.ndjson}]\n    expect: {dead_letters: []}\n", "input[0]: want exactly one of records, text and file"},
		{"bad regex", "cases:\n  - name: x\n    input: [{records: [{a: 1}]}]\n    expect: {dead_letters: [{reason: /(/}]}\n", "dead_letters[0].reason: error parsing regexp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := t.TempDir() + "/pipeline.test.yaml"
			require.NoError(t, writeFile(path, tc.yaml))
			_, err := testrun.Load(path)
			require.ErrorIs(t, err, testrun.ErrInvalidTest)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

// TestIsolated: a pipeline that watches a landing directory and calls a
// webhook runs in a test without either, and says so.
func TestIsolated(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "isolated")
	require.NoError(t, os.CopyFS(dir, os.DirFS("testdata/isolated")))
	results := run(t, filepath.Join(dir, "pipeline.test.yaml"))
	require.Len(t, results, 1)
	require.True(t, results[0].Passed, results[0].Text())
	require.Equal(t, []string{
		"1 webhook target(s) not called (alerts are checked on JF_ALERTS)",
		"dataset events: landing directory " + filepath.Join(dir, "landing") + " not watched",
	}, results[0].Notes)
	require.FileExists(t, filepath.Join(dir, "landing", "z.ndjson"), "the landing file is left alone")
}
