package main_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestSetupThenBindOnlyWorkers: a stream pre-created with a bad config
// (what a worker user could do before only admins could create) makes a
// bind-only worker refuse at once, naming every problem; setup refuses
// to paper over it, makes everything once the stream is gone, does nothing
// the second time, and bind-only workers then run the pipeline.
func TestSetupThenBindOnlyWorkers(t *testing.T) {
	t.Parallel()
	srv := embeddedtest.Server(t)
	url := srv.ClientURL()
	env := []string{"NATS_URL=" + url}
	_, js := embeddedtest.Connect(t, url)
	_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{
		Name: subjects.StreamAlerts, Subjects: []string{"jf.ingest.orders", "jf.valid.orders", "jf.clean.>"}, MaxMsgs: 1,
	})
	require.NoError(t, err)

	out, code := jf(t, env, "worker", "--pipeline", passthrough, "--bind-only", "validate")
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "worker validate: --bind-only: ")
	require.Contains(t, out, "stream JF_INGEST does not exist (an admin creates it: jetfleet setup --pipeline FILE)")
	require.Contains(t, out, "stream JF_ALERTS: subjects [jf.ingest.orders jf.valid.orders jf.clean.>], want [jf.alert.>]; max_msgs 1, want unlimited")
	_, err = js.Stream(t.Context(), subjects.StreamIngest)
	require.ErrorIs(t, err, jetstream.ErrStreamNotFound, "a bind-only worker creates nothing")

	out, code = jf(t, env, "setup", "--pipeline", passthrough)
	require.Equal(t, 1, code, out)
	require.Contains(t, out, "stream JF_ALERTS: subjects [jf.ingest.orders jf.valid.orders jf.clean.>], want [jf.alert.>]")

	require.NoError(t, js.DeleteStream(t.Context(), subjects.StreamAlerts)) // by hand, as the conflict says
	out, code = jf(t, env, "setup", "--pipeline", passthrough)
	require.Zero(t, code, out)
	for _, line := range []string{
		"created   stream       JF_INGEST",
		"created   stream       JF_ALERTS",
		"created   consumer     JF_INGEST/validate_orders",
		"created   consumer     JF_VALID/transform_orders",
		"created   consumer     JF_CLEAN/aggregate_orders_p7",
		"created   consumer     JF_CLEAN/rekey_orders",
		"created   consumer     JF_ADVISORIES/supervisor",
		"created   bucket       jf_fleet",
		"created   objects      jf-landing",
	} {
		require.Contains(t, out, line)
	}
	out, code = jf(t, env, "setup", "--pipeline", passthrough)
	require.Zero(t, code, out)
	require.Contains(t, out, "0 created, 0 updated, ")
	require.NotContains(t, out, "created   ")

	for _, step := range []string{"validate", "transform"} {
		p := start(t, env, "worker", "--pipeline", passthrough, "--bind-only", "--log-format", "json", step)
		embeddedtest.WaitFor(t, 30*time.Second, step+" running", func() bool { return strings.Contains(p.out.String(), "jetfleet worker running") })
		require.Contains(t, p.out.String(), "bind-only: streams, consumers and buckets are in place")
	}
	orders := filepath.Join(t.TempDir(), "orders.ndjson")
	writeOrders(t, orders, 1, 3)
	out, code = jf(t, env, "publish", "--file", orders, "--id-field", "order_id", subjects.Ingest("orders"))
	require.Zero(t, code, out)
	embeddedtest.WaitFor(t, 30*time.Second, "3 clean records", func() bool { return embeddedtest.StreamMsgs(t, js, subjects.StreamClean) == 3 })
}
