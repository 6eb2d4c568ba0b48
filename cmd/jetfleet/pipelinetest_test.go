package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPipelineTestExamples runs the shipped examples' test files, so `go
// test` (and make test) keeps them passing.
func TestPipelineTestExamples(t *testing.T) {
	t.Parallel()
	out, code := jf(t, nil, "pipeline", "test", "--json", "../../examples/")
	require.Equal(t, 0, code, out)
	var rep struct {
		Passed, Failed int
		Results        []struct {
			File   string
			Case   string
			Passed bool
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Zero(t, rep.Failed, out)
	files := map[string]bool{}
	for _, r := range rep.Results {
		files[filepath.Base(filepath.Dir(r.File))] = true
	}
	for _, ex := range []string{"shop", "iot", "market", "feedback"} {
		require.True(t, files[ex], "no test cases ran for examples/%s: %s", ex, out)
	}
}

// TestPipelineTestBrokenExpectation breaks expectations in a copy of the
// shop example: the run fails, and says row by row what differed.
func TestPipelineTestBrokenExpectation(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "shop")
	require.NoError(t, os.CopyFS(dir, os.DirFS("../../examples/shop")))
	edit := func(name string, pairs ...string) {
		t.Helper()
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		s := string(b)
		for i := 0; i < len(pairs); i += 2 {
			require.Contains(t, s, pairs[i])
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		require.NoError(t, os.WriteFile(path, []byte(s), 0o600))
	}
	edit("pipeline.test.yaml",
		"{day: \"2026-10-02\", country: GB, orders: 1, revenue_usd: 1270}", "{day: \"2026-10-02\", country: GB, orders: 1, revenue_usd: 1300}",
		"{step: validate, reason: currency, record: {order_id: b-3}}", "{step: validate, reason: bitcoin, record: {order_id: b-3}}")
	edit("testdata/sample.golden.yaml", "amount_usd: 21.6, country: DE", "amount_usd: 21.7, country: DE")

	out, code := jf(t, nil, "pipeline", "test", dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "2 passed, 3 failed")
	require.Contains(t, out, "FAIL "+filepath.Join(dir, "pipeline.test.yaml")+":6: the sample file")
	require.Contains(t, out, `~ order_id="s-2": amount_usd: want 21.7, got 21.6`)
	require.Contains(t, out, `~ country="GB" day="2026-10-02": revenue_usd: want 1300, got 1270`)
	require.Contains(t, out, `- want, missing:   validate: reason "bitcoin" record {"order_id":"b-3"}`)
	require.Contains(t, out, `+ got, unexpected: validate/orders: reason "validation failed: currency: \"JPY\" is not one of USD, EUR, GBP"`)

	// --update makes the golden file what the fleet gives again.
	out, code = jf(t, nil, "pipeline", "test", "--update", "--run", "sample file", dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "wrote "+filepath.Join(dir, "testdata", "sample.golden.yaml"))
	golden, err := os.ReadFile(filepath.Join(dir, "testdata", "sample.golden.yaml"))
	require.NoError(t, err)
	require.Contains(t, string(golden), "amount_usd: 21.6, country: DE")
	if diff, err := exec.Command("diff", "-u", "../../examples/shop/testdata/sample.golden.yaml", filepath.Join(dir, "testdata", "sample.golden.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("an updated golden file differs from the shipped one:\n%s", diff)
	}

	// A misspelt key is an error with the file and line, not an unchecked expectation.
	edit("pipeline.test.yaml", "    expect:\n      clean:", "    expect:\n      cleen:")
	out, code = jf(t, nil, "pipeline", "test", dir)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "field cleen not found")
}

// keptShopDataDir runs one shop case with --keep and returns the data
// dir it leaves: a lake and marts written by the real fleet.
func keptShopDataDir(t *testing.T) string {
	t.Helper()
	out, code := jf(t, []string{"TMPDIR=" + t.TempDir()}, "pipeline", "test", "--keep", "--json", "--run", "rolled up", "../../examples/shop/pipeline.yaml")
	require.Equal(t, 0, code, out)
	var rep struct {
		Results []struct {
			DataDir string `json:"data_dir"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
	require.Len(t, rep.Results, 1)
	require.DirExists(t, filepath.Join(rep.Results[0].DataDir, "lake", "orders"))
	return rep.Results[0].DataDir
}

// TestPipelineCheckAgainstLake: with --data-dir, a changed column type and
// a dropped column a mart uses are refused with file:line before
// anything runs; an added column passes.
func TestPipelineCheckAgainstLake(t *testing.T) {
	t.Parallel()
	dataDir := keptShopDataDir(t)
	orig, err := os.ReadFile("../../examples/shop/pipeline.yaml")
	require.NoError(t, err)
	write := func(pairs ...string) string {
		t.Helper()
		s := string(orig)
		for i := 0; i < len(pairs); i += 2 {
			require.Contains(t, s, pairs[i])
			s = strings.Replace(s, pairs[i], pairs[i+1], 1)
		}
		path := filepath.Join(t.TempDir(), "pipeline.yaml")
		require.NoError(t, os.WriteFile(path, []byte(s), 0o600))
		return path
	}
	bad := write("{name: amount, type: DOUBLE}", `{name: amount, type: "DECIMAL(18,2)"}`,
		"      - {name: customer_id, type: VARCHAR}\n", "")
	out, code := jf(t, nil, "pipeline", "check", "--data-dir", dataDir, bad)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, bad+":11:16: datasets.orders.schema[1].type: column amount changes type from DOUBLE (the lake's) to DECIMAL(18,2)")
	require.Contains(t, out, bad+":69:3: marts.customer_ltv.sql: uses column customer_id, which the schema of dataset orders no longer has")
	require.Contains(t, out, "2 problem(s) against the lake of "+dataDir)

	added := write("      - {name: email_hash, type: VARCHAR}\n", "      - {name: email_hash, type: VARCHAR}\n      - {name: channel, type: VARCHAR}\n")
	out, code = jf(t, nil, "pipeline", "check", "--data-dir", dataDir, added)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "ok: pipeline shop")
}

// TestPipelineTestAddedColumnOnData: a column added to the schema of a
// pipeline with data works without a rebuild: a case run from a kept data
// dir sees old records with the column NULL and new ones with it, in a
// new mart and an unchanged one.
func TestPipelineTestAddedColumnOnData(t *testing.T) {
	t.Parallel()
	dataDir := keptShopDataDir(t)
	dir := t.TempDir()
	orig, err := os.ReadFile("../../examples/shop/pipeline.yaml")
	require.NoError(t, err)
	v2 := strings.Replace(string(orig), "      - {name: email_hash, type: VARCHAR}\n", "      - {name: email_hash, type: VARCHAR}\n      - {name: channel, type: VARCHAR}\n", 1)
	v2 = strings.Replace(v2, "marts:\n", "marts:\n  by_channel:\n    dataset: orders\n    sql: SELECT channel, count(*) AS orders FROM orders GROUP BY ALL\n", 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pipeline.yaml"), []byte(v2), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pipeline.test.yaml"), []byte(`cases:
  - name: old records and new ones
    input:
      - records:
          - {order_id: n-1, customer_id: c-9, amount: 50, currency: USD, country: US, ts: "2026-10-01T12:00:00Z", channel: web}
    expect:
      clean:   # the case's own records, not the data dir's
        orders: {fields: [order_id, channel], records: [{order_id: n-1, channel: web}]}
      dead_letters: []
      marts:
        by_channel:
          exact: true
          rows: [{orders: 3}, {channel: web, orders: 1}]
        daily_sales:
          fields: [day, country, orders, revenue_usd]
          rows:
            - {day: "2026-10-01", country: US, orders: 2, revenue_usd: 150}
            - {day: "2026-10-02", country: DE, orders: 1, revenue_usd: 54}
            - {day: "2026-10-02", country: GB, orders: 1, revenue_usd: 1270}
`), 0o600))
	out, code := jf(t, nil, "pipeline", "check", "--data-dir", dataDir, filepath.Join(dir, "pipeline.yaml"))
	require.Equal(t, 0, code, out)
	out, code = jf(t, nil, "pipeline", "test", "--data-dir", dataDir, dir)
	require.Equal(t, 0, code, out)
	require.Contains(t, out, "1 passed, 0 failed")
}
