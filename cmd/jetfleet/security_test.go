package main_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/jetfleet/jetfleet/embedded"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// secureRoles are the users of scripts/secure/nats.conf.
var secureRoles = []string{"publisher", "ingest", "validate", "transform", "aggregate", "alert", "supervisor", "ops"}

// secureBundle is a server started from scripts/secure/nats.conf with a
// CA, server and client certificate and a password per role made here.
type secureBundle struct {
	port      int
	dir       string
	ca        string
	cert, key string
	passwords map[string]string
	serverLog *syncBuffer
}

func setupSecure(t *testing.T) *secureBundle {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join("..", "..", "scripts", "secure", "nats.conf"))
	require.NoError(t, err)
	return setupSecureWith(t, conf)
}

// setupSecureWith starts a server from conf, a config with the users of
// secureRoles (jetfleet security conf writes them).
func setupSecureWith(t *testing.T, conf []byte) *secureBundle {
	t.Helper()
	dir := t.TempDir()
	b := &secureBundle{dir: dir, passwords: map[string]string{}, serverLog: newSyncBuffer()}
	b.ca, b.cert, b.key = writeCerts(t, dir)

	var site strings.Builder
	fmt.Fprintf(&site, "JF_TLS_CERT: %q\nJF_TLS_KEY: %q\nJF_TLS_CA: %q\n", filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem"), b.ca)
	for _, role := range secureRoles {
		pw := fmt.Sprintf("pw-%s-%d", role, time.Now().UnixNano())
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost) // production: cost 11
		require.NoError(t, err)
		b.passwords[role] = pw
		fmt.Fprintf(&site, "JF_%s_PASS: %q\n", strings.ToUpper(role), hash)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nats.conf"), conf, 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "site.conf"), []byte(site.String()), 0o600))

	srv, err := embedded.Start(embedded.Config{
		StoreDir:   filepath.Join(dir, "store"),
		ConfigFile: filepath.Join(dir, "nats.conf"),
		Host:       "127.0.0.1",
		Port:       -1,
		Logger:     zerolog.New(b.serverLog),
	})
	require.NoError(t, err)
	t.Cleanup(srv.Shutdown)
	b.port = srv.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", b.serverLog.String())
		}
	})
	return b
}

func (b *secureBundle) url() string { return fmt.Sprintf("tls://127.0.0.1:%d", b.port) }

// env is the environment of a jetfleet process running as role.
func (b *secureBundle) env(role string) []string {
	return []string{
		"NATS_URL=" + b.url(), "NATS_USER=" + role, "NATS_PASSWORD=" + b.passwords[role],
		"NATS_CA=" + b.ca, "NATS_CERT=" + b.cert, "NATS_KEY=" + b.key,
		"NATS_INBOX_PREFIX=_INBOX_" + role,
	}
}

// connect connects as role; async errors (permission violations) go to errs.
func (b *secureBundle) connect(t *testing.T, role string, errs chan<- error, extra ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	opts := append([]nats.Option{
		nats.UserInfo(role, b.passwords[role]),
		nats.RootCAs(b.ca), nats.ClientCert(b.cert, b.key),
		nats.Timeout(5 * time.Second), nats.CustomInboxPrefix("_INBOX_" + role),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errs != nil {
				select {
				case errs <- err:
				default:
				}
			}
		}),
	}, extra...)
	nc, err := nats.Connect(b.url(), opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// writeCerts makes a CA and, signed by it, a server certificate for
// 127.0.0.1 and a client certificate; it returns the CA, client cert and
// client key paths.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jetfleet test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	ca = filepath.Join(dir, "ca.pem")
	writePEM(t, ca, "CERTIFICATE", caDER)

	issue := func(name string, serial int64, usage x509.ExtKeyUsage) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		require.NoError(t, err)
		kb, err := x509.MarshalECPrivateKey(k)
		require.NoError(t, err)
		writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
		writePEM(t, filepath.Join(dir, name+"-key.pem"), "EC PRIVATE KEY", kb)
	}
	issue("server", 2, x509.ExtKeyUsageServerAuth)
	issue("client", 3, x509.ExtKeyUsageClientAuth)
	return ca, filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func TestSecureConfigRefusesStrangers(t *testing.T) {
	t.Parallel()
	b := setupSecure(t)

	t.Run("unauthenticated", func(t *testing.T) {
		_, err := nats.Connect(b.url(), nats.RootCAs(b.ca), nats.ClientCert(b.cert, b.key), nats.Timeout(5*time.Second))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("wrong password", func(t *testing.T) {
		_, err := nats.Connect(b.url(), nats.UserInfo("ops", "not-the-password"), nats.RootCAs(b.ca), nats.ClientCert(b.cert, b.key), nats.Timeout(5*time.Second))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	})
	t.Run("TLS without the CA", func(t *testing.T) {
		_, err := nats.Connect(b.url(), nats.UserInfo("ops", b.passwords["ops"]), nats.ClientCert(b.cert, b.key), nats.Timeout(5*time.Second))
		require.Error(t, err)
		var unknown x509.UnknownAuthorityError
		require.ErrorAs(t, err, &unknown, "want the server certificate refused: %v", err)
	})
	t.Run("TLS without a client certificate", func(t *testing.T) {
		nc, err := nats.Connect(b.url(), nats.UserInfo("ops", b.passwords["ops"]), nats.RootCAs(b.ca), nats.Timeout(5*time.Second))
		if err == nil { // TLS 1.3 reports a refused client certificate after the handshake
			defer nc.Close()
			err = nc.Flush()
		}
		require.Error(t, err)
	})
	t.Run("plain text", func(t *testing.T) {
		_, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", b.port), nats.UserInfo("ops", b.passwords["ops"]), nats.Timeout(5*time.Second))
		require.Error(t, err, "a client that does not do TLS must not get in")
	})
	t.Run("with CA, certificate and password", func(t *testing.T) {
		nc, err := b.connect(t, "ops", nil)
		require.NoError(t, err)
		require.True(t, nc.TLSRequired())
		require.NoError(t, nc.Flush())
	})
}

// TestSecureRolesTouchOnlyTheirSubjects: a worker holding another step's
// subjects is refused by the server, not trusted to behave.
func TestSecureRolesTouchOnlyTheirSubjects(t *testing.T) {
	t.Parallel()
	b := setupSecure(t)
	ops, err := b.connect(t, "ops", nil)
	require.NoError(t, err)
	opsJS, err := jetstream.New(ops)
	require.NoError(t, err)
	require.NoError(t, subjects.Ensure(t.Context(), opsJS, subjects.StreamOptions{}))

	cases := []struct {
		role, subject string
	}{
		{"ingest", subjects.Clean("x")},
		{"ingest", subjects.Clean("orders")},
		{"validate", subjects.Clean("orders")},
		{"publisher", subjects.Valid("orders")},
		{"publisher", subjects.DeadLetter("validate", "orders")},
		{"transform", subjects.Ingest("orders")},
		{"aggregate", subjects.Clean("orders")},
		{"validate", "$JS.API.STREAM.DELETE.JF_INGEST"},
		{"supervisor", "$JS.API.STREAM.PURGE.JF_CLEAN"},
		{"ops", "$JS.API.STREAM.DELETE.JF_CLEAN"},
	}
	for _, tc := range cases {
		t.Run(tc.role+" publishes "+tc.subject, func(t *testing.T) {
			errs := make(chan error, 4)
			nc, err := b.connect(t, tc.role, errs)
			require.NoError(t, err)
			require.NoError(t, nc.Publish(tc.subject, []byte(`{"order_id":"evil"}`)))
			require.NoError(t, nc.Flush())
			err = embeddedtest.WaitOrTimeout(t, errs, 10*time.Second, "a permission violation for "+tc.role+" publishing to "+tc.subject)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			require.Contains(t, err.Error(), tc.subject)
		})
	}
	// Nothing of the above reached a stream.
	for _, name := range []string{subjects.StreamValid, subjects.StreamClean, subjects.StreamDLQ} {
		require.Zero(t, embeddedtest.StreamMsgs(t, opsJS, name), "stream %s", name)
	}

	for _, tc := range []struct{ role, subject string }{
		{"ingest", subjects.Clean("orders")},
		{"validate", "_INBOX.>"},
		{"validate", "_INBOX_ops.>"},
		{"publisher", subjects.AllHeartbeats},
	} {
		t.Run(tc.role+" subscribes "+tc.subject, func(t *testing.T) {
			errs := make(chan error, 4)
			nc, err := b.connect(t, tc.role, errs)
			require.NoError(t, err)
			_, err = nc.SubscribeSync(tc.subject)
			require.NoError(t, err) // refused asynchronously
			require.NoError(t, nc.Flush())
			err = embeddedtest.WaitOrTimeout(t, errs, 10*time.Second, "a permission violation for "+tc.role+" subscribing to "+tc.subject)
			require.ErrorIs(t, err, nats.ErrPermissionViolation)
			require.Contains(t, err.Error(), tc.subject)
		})
	}
}

// TestSecureFleetRunsWithOneUserPerRole runs every step as its own process
// with its own user over TLS, the supervisor and the operator commands, and
// checks the pipeline does its whole job with no permission violation, and
// that no password shows in any log or status output.
func TestSecureFleetRunsWithOneUserPerRole(t *testing.T) {
	t.Parallel()
	b := setupSecure(t)
	dataDir := t.TempDir()
	setupAsAdmin(t, b) // workers bind only: their users may not create

	out, code := jf(t, b.env("ops"), "lookup", "load")
	require.Zero(t, code, out)

	// The validate worker gets its password in the URL, the others through
	// NATS_PASSWORD: neither may show in a log.
	validateEnv := append(b.env("validate"), fmt.Sprintf("NATS_URL=tls://validate:%s@127.0.0.1:%d", b.passwords["validate"], b.port), "NATS_PASSWORD=")
	procs := map[string]*proc{
		"validate":   start(t, validateEnv, "worker", "--log-format", "json", "validate"),
		"transform":  start(t, b.env("transform"), "worker", "--log-format", "json", "transform"),
		"aggregate":  start(t, b.env("aggregate"), "worker", "--log-format", "json", "--data-dir", dataDir, "aggregate"),
		"supervisor": start(t, b.env("supervisor"), "supervisor", "--log-format", "json", "--http", ""),
		"ingest":     start(t, b.env("ingest"), "worker", "--log-format", "json", "ingest"),
		"alert":      start(t, b.env("alert"), "worker", "--log-format", "json", "alert"),
	}
	for name, p := range procs {
		embeddedtest.WaitFor(t, 60*time.Second, name+" running", func() bool {
			s := p.out.String()
			return strings.Contains(s, "jetfleet worker running") || strings.Contains(s, "supervisor started")
		})
	}
	ops, err := b.connect(t, "ops", nil)
	require.NoError(t, err)
	js, err := jetstream.New(ops)
	require.NoError(t, err)
	for _, c := range []struct{ stream, step string }{{subjects.StreamIngest, "validate"}, {subjects.StreamValid, "transform"}, {subjects.StreamClean, "aggregate"}, {subjects.StreamClean, "alert"}} {
		embeddedtest.WaitFor(t, 60*time.Second, c.step+" consumer", func() bool {
			step, _ := subjects.StepByName(c.step)
			_, err := js.Consumer(t.Context(), c.stream, subjects.StepConsumerNames(step, "orders", subjects.DefaultPartitions)[0])
			return err == nil
		})
	}

	orders := filepath.Join(t.TempDir(), "orders.ndjson")
	require.NoError(t, os.WriteFile(orders, []byte(smokeOrders), 0o600))
	out, code = jf(t, b.env("publisher"), "publish", "--file", orders, "--id-field", "order_id", "jf.ingest.orders")
	require.Zero(t, code, out)

	count := func(stream string) uint64 { return embeddedtest.StreamMsgs(t, js, stream) }
	// status --wait-idle needs mart reports, which only a supervisor that
	// shares the aggregator's data dir makes (dev); watch the consumer.
	aggregated := func() bool { // every partition consumer of the aggregator
		var delivered uint64
		for _, name := range subjects.StepConsumerNames(subjects.StepAggregate, "orders", subjects.DefaultPartitions) {
			c, err := js.Consumer(t.Context(), subjects.StreamClean, name)
			if err != nil {
				return false
			}
			ci := c.CachedInfo()
			if ci.NumAckPending > 0 || ci.NumPending > 0 {
				return false
			}
			delivered = max(delivered, ci.Delivered.Stream)
		}
		return count(subjects.StreamClean) > 0 && delivered == count(subjects.StreamClean)
	}
	embeddedtest.WaitFor(t, 60*time.Second, "the aggregator to commit every clean record", func() bool {
		return count(subjects.StreamIngest) == count(subjects.StreamClean)+count(subjects.StreamDLQ) && aggregated()
	})
	// smokeOrders: 8 lines, one a duplicate (stored once), 4 dead-lettered by validate.
	require.Equal(t, uint64(7), count(subjects.StreamIngest))

	opsURL := fmt.Sprintf("tls://ops:%s@127.0.0.1:%d", b.passwords["ops"], b.port)
	statusJSON, code := jf(t, append(b.env("ops"), "NATS_URL="+opsURL, "NATS_PASSWORD="), "status", "--json")
	require.Zero(t, code, statusJSON)
	var st struct {
		Steps []struct {
			Step    string `json:"step"`
			Dataset string `json:"dataset"`
		} `json:"steps"`
	}
	brace := strings.Index(statusJSON, "{")
	require.GreaterOrEqual(t, brace, 0, statusJSON)
	require.NoError(t, json.Unmarshal([]byte(statusJSON[brace:]), &st), statusJSON)
	require.Len(t, st.Steps, 5, "validate, transform, aggregate, alert and rekey (in the aggregate process) in the status of the ops user")

	want := fmt.Sprintf("n\n%d\n", count(subjects.StreamClean))
	embeddedtest.WaitFor(t, 60*time.Second, "the lake flushed: "+want, func() bool {
		out, code := jf(t, nil, "query", "--data-dir", dataDir, "--format", "csv", "SELECT count(*) AS n FROM orders")
		return code == 0 && out == want
	})

	// Files through the landing bucket: the publisher uploads, the ingest
	// worker reads, publishes and deletes.
	landed := filepath.Join(t.TempDir(), "more.ndjson")
	bigOrder := `{"order_id":"l-2","customer_id":"c-2","amount":5000,"currency":"USD","country":"US","ts":"2026-10-03T10:00:00Z"}` // fires big_order
	require.NoError(t, os.WriteFile(landed, []byte(shopOrder("l-1", "c-1")+"\n"+bigOrder+"\n"), 0o600))
	before := count(subjects.StreamClean)
	out, code = jf(t, b.env("publisher"), "publish", "--object", "--file", landed, "jf.ingest.orders")
	require.Zero(t, code, out)
	embeddedtest.WaitFor(t, 60*time.Second, "the landed file in the clean stream", func() bool { return count(subjects.StreamClean) == before+2 })
	embeddedtest.WaitFor(t, 60*time.Second, "the alert worker's big_order alert", func() bool { return count(subjects.StreamAlerts) >= 1 })

	// Operators steer workers: the request goes out on jf.ctl, the answer
	// comes back on the ops inbox (workers may answer, not publish there).
	out, code = jf(t, b.env("ops"), "ctl", "pause", "transform")
	require.Zero(t, code, out)
	require.Contains(t, procs["transform"].out.String(), `"pausing"`)
	out, code = jf(t, b.env("ops"), "ctl", "resume", "transform")
	require.Zero(t, code, out)

	var all bytes.Buffer
	for name, p := range procs {
		s := p.out.String()
		require.NotContains(t, strings.ToLower(s), "permissions violation", "%s ran into its permissions:\n%s", name, s)
		all.WriteString(s)
	}
	all.WriteString(statusJSON)
	all.WriteString(b.serverLog.String())
	for role, pw := range b.passwords {
		require.NotContains(t, all.String(), pw, "the password of %s leaked", role)
	}
}

// TestListenersDefaultToLoopback: every address jetfleet listens on
// without being told is on loopback; the ones without a default are off.
func TestListenersDefaultToLoopback(t *testing.T) {
	t.Parallel()
	defaultRe := regexp.MustCompile(`\(default: "([^"]*)"\)`)
	for _, tc := range []struct {
		command, flag string
		off           bool // no listener unless the flag is given
	}{
		{"dev", "--listen", false},
		{"dev", "--http", false},
		{"supervisor", "--http", false},
		{"worker", "--http", true},
		{"query", "--http", true},
	} {
		t.Run(tc.command+" "+tc.flag, func(t *testing.T) {
			t.Parallel()
			help, code := jf(t, nil, tc.command, "--help")
			require.Zero(t, code, help)
			var line string
			for _, l := range strings.Split(help, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), tc.flag+" ") {
					line = l
				}
			}
			require.NotEmpty(t, line, "no %s in %s --help", tc.flag, tc.command)
			m := defaultRe.FindStringSubmatch(line)
			if tc.off {
				require.Nil(t, m, "%s %s should be off by default: %s", tc.command, tc.flag, line)
				return
			}
			require.NotNil(t, m, line)
			host, _, err := net.SplitHostPort(m[1])
			require.NoError(t, err)
			require.True(t, net.ParseIP(host).IsLoopback(), "%s %s defaults to %s", tc.command, tc.flag, m[1])
		})
	}
}

func TestPasswdHashesForTheServer(t *testing.T) {
	t.Parallel()
	out, code := jf(t, nil, "passwd", "--generate")
	require.Zero(t, code, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.GreaterOrEqual(t, len(lines[0]), 24)
	require.NoError(t, bcrypt.CompareHashAndPassword([]byte(lines[1]), []byte(lines[0])))
	cost, err := bcrypt.Cost([]byte(lines[1]))
	require.NoError(t, err)
	require.Equal(t, 11, cost)

	_, code = jf(t, nil, "passwd", "secret-on-the-command-line")
	require.Equal(t, 2, code, "a password as an argument would show in ps")
}

// TestQueryCommandIsReadOnly: the CLI refuses what writes, and a file
// outside the marts stays out of reach.
func TestQueryCommandIsReadOnly(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dataDir, "marts"), 0o750))
	secret := filepath.Join(dataDir, "secret.csv")
	require.NoError(t, os.WriteFile(secret, []byte("s\nsecret-value\n"), 0o600))
	target := filepath.Join(dataDir, "marts", "written.csv")
	for _, q := range []string{
		"COPY (SELECT 42) TO '" + target + "'",
		"CREATE TABLE t AS SELECT 42",
		"ATTACH '" + filepath.Join(dataDir, "x.duckdb") + "'",
		"INSTALL httpfs",
		"SET enable_external_access = true",
		"SELECT * FROM read_csv('" + secret + "')",
		"SELECT * FROM read_parquet('" + dataDir + "/marts/../*.parquet')",
	} {
		out, code := jf(t, nil, "query", "--data-dir", dataDir, q)
		require.NotZero(t, code, "%s ran:\n%s", q, out)
		require.NotContains(t, out, "secret-value", q)
	}
	require.NoFileExists(t, target)
	require.NoFileExists(t, filepath.Join(dataDir, "x.duckdb"))
}
