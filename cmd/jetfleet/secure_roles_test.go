package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestSecureWorkerProbes: under the secure config a worker's /readyz,
// /status and /metrics answer from what its own user may read (its
// consumer's info), with no permission violation on the server.
func TestSecureWorkerProbes(t *testing.T) {
	t.Parallel()
	b := setupSecure(t)
	setupAsAdmin(t, b)
	addr := fmt.Sprintf("127.0.0.1:%d", embeddedtest.FreePort(t))
	p := start(t, b.env("validate"), "worker", "--log-format", "json", "--http", addr, "validate")

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	var body string
	embeddedtest.WaitFor(t, 60*time.Second, "/readyz 200", func() bool {
		code, body = get("/readyz")
		return code == http.StatusOK
	})
	code, body = get("/status")
	require.Equal(t, http.StatusOK, code, body)
	var st struct {
		Steps []struct {
			Step, Dataset, Consumer string
			Workers                 []struct{ ID string }
		} `json:"steps"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &st), body)
	require.Len(t, st.Steps, 1, body)
	require.Equal(t, "validate_orders", st.Steps[0].Consumer)
	require.Len(t, st.Steps[0].Workers, 1)
	code, body = get("/metrics")
	require.Equal(t, http.StatusOK, code, body)
	require.Contains(t, body, `jetfleet_consumer_pending{dataset="orders",step="validate"} 0`)
	require.Contains(t, body, "jetfleet_status_ok 1")

	for _, s := range []string{b.serverLog.String(), p.out.String()} {
		require.NotContains(t, strings.ToLower(s), "permissions violation", s)
	}
}

// setupAsAdmin runs jetfleet setup for the shop pipeline as ops, the one
// role that may create streams, consumers and buckets.
func setupAsAdmin(t *testing.T, b *secureBundle) {
	t.Helper()
	out, code := jf(t, b.env("ops"), "setup")
	require.Zero(t, code, out)
	require.Contains(t, out, "setup of pipeline shop: ")
}

// twoDatasets is a pipeline of two datasets with a record rule and a
// webhook target, for the generated server config.
var twoDatasets, _ = filepath.Abs(filepath.Join("testdata", "twodatasets.yaml"))

// TestSecureConfIsGenerated: scripts/secure/nats.conf is what jetfleet
// security conf writes for the shop pipeline, and the config of another
// pipeline parses and names its datasets, rule and webhook.
func TestSecureConfIsGenerated(t *testing.T) {
	t.Parallel()
	out, code := jf(t, nil, "security", "conf", "--log-level", "warn")
	require.Zero(t, code, out)
	shipped, err := os.ReadFile(filepath.Join("..", "..", "scripts", "secure", "nats.conf"))
	require.NoError(t, err)
	require.Equal(t, string(shipped), out, "scripts/secure/nats.conf is stale: jetfleet security conf > scripts/secure/nats.conf")

	dir := t.TempDir()
	conf := filepath.Join(dir, "nats.conf")
	out, code = jf(t, nil, "security", "conf", "--pipeline", twoDatasets, "--out", conf)
	require.Zero(t, code, out)
	b := setupSecureWith(t, mustRead(t, conf)) // writes site.conf with every role's hash
	_ = b
	text := string(mustRead(t, conf))
	for _, want := range []string{
		`"$JS.API.CONSUMER.MSG.NEXT.JF_INGEST.validate_payments"`, `"jf.valid.payments"`,
		`"$JS.API.CONSUMER.INFO.JF_CLEAN.aggregate_payments_p7"`, `"jf.alert.big_payment"`,
		`"$JS.API.CONSUMER.MSG.NEXT.JF_ALERTS.webhook_pager"`, `"jf.ctl.step.transform", "jf.ctl.step.transform.*"`,
	} {
		require.Contains(t, text, want)
	}
	require.NotContains(t, text, `"jf.ctl.>", "_INBOX_`, "no worker takes every control subject")
	require.NotContains(t, text, "STREAM.CREATE.JF_", "only ops creates streams, through its $JS.API.STREAM.> grant")
	_, err = server.ProcessConfigFile(filepath.Join(b.dir, "nats.conf"))
	require.NoError(t, err)
}

// TestSecureGeneratedConfRunsThePipeline: a server from the generated
// config of a two-dataset pipeline, setup as ops, every role its own
// process as its own user over TLS: records of both datasets reach the
// clean stream and the marts' consumers, the record rule fires, and
// nothing runs into its permissions. The validate user can neither take
// nor answer transform's control subjects, beat for transform, nor
// create a stream or consumer, and ops's ctl shows only the real worker.
func TestSecureGeneratedConfRunsThePipeline(t *testing.T) {
	t.Parallel()
	conf := filepath.Join(t.TempDir(), "nats.conf")
	out, code := jf(t, nil, "security", "conf", "--pipeline", twoDatasets, "--out", conf)
	require.Zero(t, code, out)
	b := setupSecureWith(t, mustRead(t, conf))

	// Before setup a bind-only worker refuses, saying what is missing.
	out, code = jf(t, b.env("validate"), "worker", "--pipeline", twoDatasets, "validate")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "stream JF_INGEST does not exist (an admin creates it: jetfleet setup --pipeline FILE)")

	out, code = jf(t, b.env("supervisor"), "supervisor", "--http", "")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "key-value bucket jf_fleet does not exist (an admin creates it: jetfleet setup --pipeline FILE)")

	out, code = jf(t, b.env("ops"), "setup", "--pipeline", twoDatasets)
	require.Zero(t, code, out)
	require.Contains(t, out, "created   consumer     JF_ALERTS/webhook_pager")

	dataDir := t.TempDir()
	procs := map[string]*proc{}
	for _, role := range []string{"validate", "transform", "aggregate", "alert"} {
		args := []string{"worker", "--pipeline", twoDatasets, "--log-format", "json"}
		if role == "aggregate" {
			args = append(args, "--data-dir", dataDir)
		}
		procs[role] = start(t, b.env(role), append(args, role)...)
	}
	procs["supervisor"] = start(t, b.env("supervisor"), "supervisor", "--log-format", "json", "--http", "")
	for name, p := range procs {
		embeddedtest.WaitFor(t, 60*time.Second, name+" running", func() bool {
			s := p.out.String()
			return strings.Contains(s, "jetfleet worker running") || strings.Contains(s, "supervisor started")
		})
	}

	dir := t.TempDir()
	for ds, lines := range map[string]string{
		"orders":   `{"order_id":"o-1","amount":5}` + "\n" + `{"order_id":"o-2","amount":6}` + "\n",
		"payments": `{"payment_id":"p-1","amount":5}` + "\n" + `{"payment_id":"p-2","amount":5000}` + "\n",
	} {
		f := filepath.Join(dir, ds+".ndjson")
		require.NoError(t, os.WriteFile(f, []byte(lines), 0o600))
		out, code = jf(t, b.env("publisher"), "publish", "--file", f, subjects.Ingest(ds))
		require.Zero(t, code, out)
	}
	ops, err := b.connect(t, "ops", nil)
	require.NoError(t, err)
	js, err := jetstream.New(ops)
	require.NoError(t, err)
	msgs := func(stream, filter string) uint64 {
		s, err := js.Stream(t.Context(), stream)
		if err != nil {
			return 0
		}
		info, err := s.Info(t.Context(), jetstream.WithSubjectFilter(filter))
		if err != nil {
			return 0
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	embeddedtest.WaitFor(t, 60*time.Second, "both datasets clean", func() bool {
		return msgs(subjects.StreamClean, "jf.clean.orders.>") == 2 && msgs(subjects.StreamClean, "jf.clean.payments.>") == 2
	})
	embeddedtest.WaitFor(t, 60*time.Second, "the aggregators took every clean record", func() bool {
		for _, ds := range []string{"orders", "payments"} {
			var delivered uint64
			for _, name := range subjects.StepConsumerNames(subjects.StepAggregate, ds, subjects.DefaultPartitions) {
				c, err := js.Consumer(t.Context(), subjects.StreamClean, name)
				if err != nil || c.CachedInfo().NumAckPending > 0 || c.CachedInfo().NumPending > 0 {
					return false
				}
				delivered += c.CachedInfo().AckFloor.Consumer
			}
			if delivered != 2 {
				return false
			}
		}
		return true
	})
	embeddedtest.WaitFor(t, 60*time.Second, "big_payment fired", func() bool { return msgs(subjects.StreamAlerts, subjects.Alert("big_payment")) == 1 })

	// The validate user tries to take transform's control traffic, beat
	// for it, and create a stream and a consumer: the server refuses each.
	for _, tc := range []struct{ what, subject string }{
		{"subscribe", subjects.ControlStep("transform")},
		{"subscribe", subjects.Control("transform", "w1")},
		{"subscribe", subjects.AllControl},
		{"publish", subjects.Heartbeat("transform", "FORGED-by-validate")},
		{"publish", "$JS.API.STREAM.CREATE." + subjects.StreamAlerts},
		{"publish", "$JS.API.STREAM.UPDATE." + subjects.StreamIngest},
		{"publish", "$JS.API.CONSUMER.CREATE.JF_INGEST.validate_orders.jf.ingest.orders"},
		{"publish", "$JS.API.STREAM.CREATE.KV_jf_alerts"},
	} {
		errs := make(chan error, 4)
		nc, err := b.connect(t, "validate", errs)
		require.NoError(t, err)
		if tc.what == "subscribe" {
			_, err = nc.Subscribe(tc.subject, func(m *nats.Msg) {
				forged, _ := json.Marshal(subjects.ControlReply{Worker: "FORGED-by-validate", Step: "transform", State: "running"})
				_ = m.Respond(forged)
			})
		} else {
			err = nc.Publish(tc.subject, []byte(`{"name":"JF_ALERTS","subjects":["jf.ingest.orders"]}`))
		}
		require.NoError(t, err)
		require.NoError(t, nc.Flush())
		select {
		case err := <-errs:
			require.ErrorIs(t, err, nats.ErrPermissionViolation, "%s %s", tc.what, tc.subject)
			require.Contains(t, err.Error(), tc.subject)
		case <-time.After(10 * time.Second):
			t.Fatalf("validate may %s %s", tc.what, tc.subject)
		}
	}
	out, code = jf(t, b.env("ops"), "ctl", "resume", "transform")
	require.Zero(t, code, out)
	require.Regexp(t, `\s+transform\s+(orders|payments)\s+running`, out)
	require.NotContains(t, out, "FORGED")
	s, err := js.Stream(t.Context(), subjects.StreamAlerts)
	require.NoError(t, err)
	require.Equal(t, []string{"jf.alert.>"}, s.CachedInfo().Config.Subjects)

	for name, p := range procs {
		require.NotContains(t, strings.ToLower(p.out.String()), "permissions violation", "%s ran into its permissions", name)
	}
	for _, l := range strings.Split(b.serverLog.String(), "\n") {
		if strings.Contains(strings.ToLower(l), "permissions violation") {
			require.Contains(t, l, `"validate"`, "only the validate user's attempts above may be refused: %s", l)
		}
	}
}

// TestSecureReadmeLines runs the README's secure set-up as written (the
// server on a free port instead of 4222): the generated config in a
// jetfleet server process, setup as ops, a validate worker as validate.
func TestSecureReadmeLines(t *testing.T) {
	t.Parallel()
	readme := string(mustRead(t, filepath.Join("..", "..", "README.md")))
	for _, line := range []string{
		"jetfleet security conf --pipeline pipeline.yaml --out nats.conf",
		"jetfleet server --config nats.conf --store-dir /var/lib/jetfleet/nats",
		"NATS_USER=ops NATS_INBOX_PREFIX=_INBOX_ops jetfleet setup --pipeline pipeline.yaml",
		"NATS_USER=validate NATS_INBOX_PREFIX=_INBOX_validate jetfleet worker --pipeline pipeline.yaml validate",
	} {
		require.Contains(t, readme, line, "the README changed: change this test with it")
	}
	pipelineFile, err := filepath.Abs(filepath.Join("..", "..", "examples", "shop", "pipeline.yaml"))
	require.NoError(t, err)

	dir := t.TempDir()
	b := &secureBundle{dir: dir, passwords: map[string]string{}, serverLog: newSyncBuffer(), port: embeddedtest.FreePort(t)}
	b.ca, b.cert, b.key = writeCerts(t, dir)
	out, code := jf(t, nil, "security", "conf", "--pipeline", pipelineFile, "--out", filepath.Join(dir, "nats.conf"))
	require.Zero(t, code, out)
	site := fmt.Sprintf("JF_TLS_CERT: %q\nJF_TLS_KEY: %q\nJF_TLS_CA: %q\n", filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), b.ca)
	for _, role := range []string{"ops", "validate", "publisher", "ingest", "transform", "aggregate", "alert", "supervisor"} {
		out, code := jf(t, nil, "passwd", "--generate")
		require.Zero(t, code, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		b.passwords[role] = lines[0]
		site += fmt.Sprintf("%s: %q\n", subjects.PasswordVar(role), lines[1])
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site), 0o600))
	srv := start(t, nil, "server", "--config", filepath.Join(dir, "nats.conf"), "--store-dir", filepath.Join(dir, "store"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", b.port), "--log-format", "json")
	embeddedtest.WaitFor(t, 30*time.Second, "the server accepts ops", func() bool {
		nc, err := b.connect(t, "ops", nil)
		if err != nil {
			return false
		}
		nc.Close()
		return true
	})

	out, code = jf(t, b.env("ops"), "setup", "--pipeline", pipelineFile)
	require.Zero(t, code, out)
	w := start(t, b.env("validate"), "worker", "--pipeline", pipelineFile, "--log-format", "json", "validate")
	embeddedtest.WaitFor(t, 60*time.Second, "validate running", func() bool { return strings.Contains(w.out.String(), "jetfleet worker running") })
	f := filepath.Join(dir, "orders.ndjson")
	require.NoError(t, os.WriteFile(f, []byte(shopOrder("r-1", "c-1")+"\n"), 0o600))
	out, code = jf(t, b.env("publisher"), "publish", "--file", f, subjects.Ingest("orders"))
	require.Zero(t, code, out)
	ops, err := b.connect(t, "ops", nil)
	require.NoError(t, err)
	js, err := jetstream.New(ops)
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 30*time.Second, "the order validated", func() bool { return embeddedtest.StreamMsgs(t, js, subjects.StreamValid) == 1 })
	for _, s := range []string{srv.out.String(), w.out.String()} {
		require.NotContains(t, strings.ToLower(s), "permissions violation", s)
	}
}
