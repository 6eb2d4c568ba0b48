package main_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// escapeBundle is a data dir with marts and a lake, links inside them that
// point out, files a query must not reach, and two working directories:
// one with a file planted in .tmp (DuckDB's default temp directory, which
// it used to make readable), one whose .tmp is a link to /etc.
type escapeBundle struct {
	dataDir, marts, lake, outside string
	planted, linked               string
	urlHits                       *atomic.Int64
	urlServer                     string
}

// escapeSecrets are in the files a query must not reach; none may show in
// any answer.
var escapeSecrets = []string{"tmp-secret-7391", "outside-secret-4412", "state-secret-5530", "data-secret-2208", "url-secret-9921", "root:x:0:0"}

func setupEscape(t *testing.T) *escapeBundle {
	t.Helper()
	b := &escapeBundle{dataDir: smokeDataDir(t), outside: t.TempDir(), planted: t.TempDir(), linked: t.TempDir(), urlHits: &atomic.Int64{}}
	b.marts, b.lake = filepath.Join(b.dataDir, "marts"), filepath.Join(b.dataDir, "lake")
	write := func(path, content string) {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o700))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	}
	write(filepath.Join(b.planted, ".tmp", "secret.csv"), "s\ntmp-secret-7391\n")
	require.NoError(t, os.Symlink("/etc", filepath.Join(b.linked, ".tmp")))
	write(filepath.Join(b.outside, "secret.csv"), "s\noutside-secret-4412\n")
	write(filepath.Join(b.outside, "secret.json"), `{"s":"outside-secret-4412"}`+"\n")
	write(filepath.Join(b.dataDir, "state", "secret.csv"), "s\nstate-secret-5530\n")
	write(filepath.Join(b.dataDir, "secret.csv"), "s\ndata-secret-2208\n")

	// Links inside the marts and the lake, each pointing out.
	for link, target := range map[string]string{
		filepath.Join(b.marts, "daily_sales", "etc"):    "/etc",
		filepath.Join(b.marts, "leak.csv"):              filepath.Join(b.outside, "secret.csv"),
		filepath.Join(b.marts, "customer_ltv", "state"): "../../state",
		filepath.Join(b.lake, "orders", "out"):          b.outside,
	} {
		require.NoError(t, os.Symlink(target, link))
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.urlHits.Add(1)
		_, _ = io.WriteString(w, "s\nurl-secret-9921\n")
	}))
	t.Cleanup(srv.Close)
	b.urlServer = srv.URL
	return b
}

type escapeAttempt struct {
	name, sql string
	linked    bool   // run in the working directory whose .tmp links to /etc
	want      string // in the error
}

const (
	wantOutside    = "only files under the marts and the lake can be read"
	wantNotAllowed = "statement not allowed"
)

func (b *escapeBundle) attempts() []escapeAttempt {
	m, l, out := b.marts, b.lake, b.outside
	return []escapeAttempt{
		// DuckDB's temp directory, relative to the working directory.
		{"temp dir, relative", "SELECT * FROM read_csv('.tmp/secret.csv')", false, wantOutside},
		{"temp dir, absolute", "SELECT * FROM read_csv('" + b.planted + "/.tmp/secret.csv')", false, wantOutside},
		{"temp dir, glob", "SELECT * FROM read_text('" + b.planted + "/.tmp/*')", false, wantOutside},
		{"temp dir, listing", "SELECT * FROM glob('" + b.planted + "/.tmp/*')", false, wantOutside},
		{"temp dir, sniff_csv", "SELECT * FROM sniff_csv('" + b.planted + "/.tmp/secret.csv')", false, wantOutside},
		{"temp dir, replacement scan", "FROM '.tmp/secret.csv'", false, wantOutside},
		{"temp dir linked to /etc", "SELECT * FROM read_csv('.tmp/passwd', delim = ':', header = false)", true, wantOutside},
		{"temp dir linked to /etc, absolute", "SELECT * FROM read_text('" + b.linked + "/.tmp/passwd')", true, wantOutside},
		{"temp dir linked to /etc, glob", "SELECT * FROM glob('" + b.linked + "/.tmp/**')", true, wantOutside},
		// Links inside the marts and the lake.
		{"link to /etc in a mart", "SELECT * FROM read_text('" + m + "/daily_sales/etc/passwd')", false, wantOutside},
		{"link to /etc in a mart, glob", "SELECT * FROM glob('" + m + "/daily_sales/etc/*')", false, wantOutside},
		{"file link in the marts", "SELECT * FROM read_csv('" + m + "/leak.csv')", false, wantOutside},
		{"relative link to the state", "SELECT * FROM read_text('" + m + "/customer_ltv/state/secret.csv')", false, wantOutside},
		{"glob meeting a link", "SELECT * FROM read_text('" + m + "/*.csv')", false, wantOutside},
		{"link in the lake", "SELECT * FROM read_text('" + l + "/orders/out/secret.csv')", false, wantOutside},
		// "..".
		{"dot-dot to the state", "SELECT * FROM read_csv('" + m + "/../state/secret.csv')", false, wantOutside},
		{"dot-dot twice", "SELECT * FROM read_text('" + m + "/daily_sales/../../secret.csv')", false, wantOutside},
		{"dot-dot from the lake", "SELECT * FROM read_text('" + l + "/../state/*')", false, wantOutside},
		{"relative dot-dot", "SELECT * FROM read_text('../../../../../../../../etc/passwd')", false, wantOutside},
		// Globs.
		{"glob of everything", "SELECT * FROM glob('/**')", false, wantOutside},
		{"glob of /etc", "SELECT * FROM read_text('/etc/*')", false, wantOutside},
		{"glob of the data dir", "SELECT * FROM read_text('" + b.dataDir + "/**')", false, wantOutside},
		{"parquet glob through dot-dot", "SELECT * FROM read_parquet('" + m + "/../**/*.parquet')", false, wantOutside},
		{"recursive glob for a name", "SELECT * FROM read_csv('/**/secret.csv')", false, wantOutside},
		// URLs.
		{"http URL", "SELECT * FROM read_text('" + b.urlServer + "/secret')", false, wantOutside},
		{"http URL, csv", "SELECT * FROM read_csv('" + b.urlServer + "/secret.csv')", false, wantOutside},
		{"s3 URL", "SELECT * FROM read_parquet('s3://jetfleet-bucket/x.parquet')", false, wantOutside},
		{"file URL", "SELECT * FROM read_text('file:///etc/passwd')", false, wantOutside},
		// Table functions, wrapped or not.
		{"read_text", "SELECT * FROM read_text('/etc/passwd')", false, wantOutside},
		{"read_blob", "SELECT * FROM read_blob('/etc/hostname')", false, wantOutside},
		{"read_json_auto", "SELECT * FROM read_json_auto('" + out + "/secret.json')", false, wantOutside},
		{"read_parquet", "SELECT * FROM read_parquet('/etc/passwd')", false, wantOutside},
		{"parquet_metadata", "SELECT * FROM parquet_metadata('" + out + "/secret.csv')", false, wantOutside},
		{"read_csv over a list", "SELECT * FROM read_text(['" + m + "/daily_sales/_manifest.json', '" + out + "/secret.csv'])", false, wantOutside},
		{"DESCRIBE", "DESCRIBE SELECT * FROM read_csv('" + out + "/secret.csv')", false, wantOutside},
		{"SUMMARIZE", "SUMMARIZE SELECT * FROM read_csv('" + out + "/secret.csv')", false, wantOutside},
		{"in a subquery", "SELECT * FROM daily_sales WHERE country IN (SELECT s FROM read_csv('" + out + "/secret.csv'))", false, wantOutside},
		{"in a CTE", "WITH s AS (SELECT * FROM read_text('" + out + "/secret.csv')) SELECT * FROM s", false, wantOutside},
		{"query()", "SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", false, wantOutside},
		{"secrets", "SELECT * FROM duckdb_secrets()", false, wantOutside},
		// Statements other than queries.
		{"COPY", "COPY (SELECT 1) TO '" + m + "/x.csv'", false, wantNotAllowed},
		{"COPY FROM", "COPY daily_sales FROM '" + out + "/secret.csv'", false, wantNotAllowed},
		{"ATTACH", "ATTACH '" + m + "/x.duckdb' AS x", false, wantNotAllowed},
		{"INSTALL", "INSTALL httpfs", false, wantNotAllowed},
		{"LOAD", "LOAD httpfs", false, wantNotAllowed},
		{"PRAGMA", "PRAGMA enable_external_access", false, wantNotAllowed},
		{"SET temp_directory", "SET temp_directory = '" + b.planted + "/.tmp'", false, wantNotAllowed},
		{"SET allowed_directories", "SET allowed_directories = ['/']", false, wantNotAllowed},
		{"RESET", "RESET enable_external_access", false, wantNotAllowed},
		{"EXPORT", "EXPORT DATABASE '" + m + "/dump'", false, wantNotAllowed},
		{"CREATE SECRET", "CREATE SECRET (TYPE s3, KEY_ID 'k', SECRET 's')", false, wantNotAllowed},
		{"stacked", "SELECT 1; SELECT * FROM read_text('/etc/passwd')", false, wantNotAllowed},
		{"hidden behind a comment", "/* SELECT */ COPY (SELECT 1) TO '" + m + "/x.csv'", false, wantNotAllowed},
	}
}

// requireNoLeak checks an answer for the planted secrets.
func requireNoLeak(t *testing.T, answer string) {
	t.Helper()
	for _, s := range escapeSecrets {
		require.NotContains(t, answer, s)
	}
}

// TestQueryEscapesThroughCLIAndHTTP runs every way out of the marts we know
// (issue 17: DuckDB's temp directory, links in the marts, "..", globs,
// URLs, table functions, statements that write or configure) through
// `jetfleet query` and through /query of `jetfleet query --http`, each from
// a working directory with a file planted in .tmp and from one whose .tmp
// links to /etc. Each fails with an error that says why, and no answer
// holds a planted secret; the marts stay readable.
func TestQueryEscapesThroughCLIAndHTTP(t *testing.T) {
	t.Parallel()
	b := setupEscape(t)
	t.Cleanup(func() { // after the parallel subtests
		require.Zero(t, b.urlHits.Load(), "a query fetched a URL")
		require.NoFileExists(t, filepath.Join(b.marts, "x.csv"))
		require.NoFileExists(t, filepath.Join(b.marts, "x.duckdb"))
		require.NoDirExists(t, filepath.Join(b.marts, "dump"))
	})
	servers := map[bool]string{} // linked -> base URL
	for _, linked := range []bool{false, true} {
		cwd := b.planted
		if linked {
			cwd = b.linked
		}
		addr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
		p := startIn(t, cwd, nil, "query", "--http", addr, "--data-dir", b.dataDir, "--log-format", "json")
		embeddedtest.WaitFor(t, 30*time.Second, "query --http serving", func() bool { return strings.Contains(p.out.String(), "serving queries") })
		servers[linked] = "http://" + addr + "/query"
	}

	for _, a := range b.attempts() {
		t.Run(a.name, func(t *testing.T) {
			t.Parallel()
			cwd := b.planted
			if a.linked {
				cwd = b.linked
			}
			out, code := jfIn(t, cwd, nil, "query", "--data-dir", b.dataDir, "--format", "csv", a.sql)
			require.Equal(t, 1, code, "CLI ran %s:\n%s", a.sql, out)
			require.Contains(t, out, a.want, a.sql)
			requireNoLeak(t, out)

			status, body := getQuery(t, servers[a.linked], a.sql)
			wantStatus := http.StatusBadRequest
			if a.want == wantOutside {
				wantStatus = http.StatusForbidden
			}
			require.Equal(t, wantStatus, status, "HTTP answered %s:\n%s", a.sql, body)
			require.Contains(t, body, a.want, a.sql)
			requireNoLeak(t, body)
		})
	}

	// What a query may see of the engine: the marts and the lake, nothing else.
	realData, err := filepath.EvalSymlinks(b.dataDir)
	require.NoError(t, err)
	settings := "SELECT current_setting('temp_directory') AS temp, list_sort(current_setting('allowed_directories')) AS dirs"
	want := fmt.Sprintf("temp,dirs\n,\"[\"\"%s/\"\",\"\"%s/\"\"]\"\n", filepath.Join(realData, "lake"), filepath.Join(realData, "marts"))
	for _, linked := range []bool{false, true} {
		cwd := b.planted
		if linked {
			cwd = b.linked
		}
		out, code := jfIn(t, cwd, nil, "query", "--data-dir", b.dataDir, "--format", "csv", settings)
		require.Zero(t, code, out)
		require.Equal(t, want, out)
		require.NotContains(t, out, ".tmp")
		status, body := getQuery(t, servers[linked], settings)
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, want, body)

		out, code = jfIn(t, cwd, nil, "query", "--data-dir", b.dataDir, "--format", "csv", "SELECT count(*) AS n FROM daily_sales")
		require.Zero(t, code, out)
		require.Equal(t, "n\n3\n", out)
		status, body = getQuery(t, servers[linked], "SELECT count(*) AS n FROM orders")
		require.Equal(t, http.StatusOK, status, body)
		require.Equal(t, "n\n3\n", body)
	}
}

// getQuery asks base (a /query URL) for sql as CSV.
func getQuery(t *testing.T, base, sql string) (int, string) {
	t.Helper()
	code, _, body := httpDo(t, http.MethodGet, base+"?format=csv&q="+url.QueryEscape(sql), nil)
	return code, body
}

// httpDo sends one request; header "Host" sets the Host header.
func httpDo(t *testing.T, method, u string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	require.NoError(t, err)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(body)
}

// jfIn is jf run in the working directory dir (the test's when "").
func jfIn(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("run %v: %v", args, err)
	}
	return string(out), 0
}

// startIn is start run in the working directory dir (the test's when "").
func startIn(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out := newSyncBuffer()
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	p := &proc{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("output of %v:\n%s", args, out.String())
		}
	})
	return p
}
