package subjects_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

// TestRolesLeastPrivilege: only ops may create or change what the
// pipeline binds to, and a step's user takes only its own step's control
// subjects and beats only as its own step.
func TestRolesLeastPrivilege(t *testing.T) {
	t.Parallel()
	roles := subjects.Roles(subjects.PipelineShape{
		Name: "p", Datasets: []string{"a", "b"}, Lookups: []string{"fx"},
		Alerts:   []subjects.AlertShape{{Name: "r1", Dataset: "a", Record: true}, {Name: "m1", Dataset: "b"}},
		Webhooks: []string{"pager"},
	})
	require.Equal(t, []string{"publisher", "ingest", "validate", "transform", "aggregate", "alert", "supervisor", "ops"}, subjects.RoleUsers(roles))
	steps := map[string][]string{
		"ingest": {"ingest"}, "validate": {"validate"}, "transform": {"transform"},
		"aggregate": {"aggregate", "rekey"}, "alert": {"alert", "webhook"},
	}
	flat := func(gs []subjects.Grant) []string {
		var out []string
		for _, g := range gs {
			out = append(out, g.Subjects...)
		}
		return out
	}
	for _, r := range roles {
		pub, sub := flat(r.Publish), flat(r.Subscribe)
		require.Contains(t, sub, subjects.Inbox(r.User)+".>", r.User)
		if r.User == "ops" {
			require.Contains(t, r.Deny, "$JS.API.STREAM.DELETE.>")
			continue
		}
		for _, s := range pub {
			if r.User == "supervisor" && strings.HasSuffix(s, ".*") {
				continue // its ledger's ordered consumers: a permission cannot match their name prefix
			}
			for _, verb := range []string{"STREAM.CREATE", "STREAM.UPDATE", "STREAM.DELETE", "CONSUMER.CREATE.JF_"} {
				require.NotContains(t, s, verb, "%s may %s", r.User, s)
			}
			require.NotEqual(t, "$JS.API.STREAM.>", s, r.User)
		}
		own, isStep := steps[r.User]
		for _, s := range sub {
			if strings.HasPrefix(s, "jf.ctl.") {
				require.True(t, isStep, "%s takes control requests: %s", r.User, s)
				p := strings.Split(s, ".")
				require.GreaterOrEqual(t, len(p), 4, s)
				require.Equal(t, "step", p[2], s)
				require.Contains(t, own, p[3], "%s takes another step's control subject %s", r.User, s)
			}
		}
		for _, s := range pub {
			if strings.HasPrefix(s, "jf.hb.") {
				require.Contains(t, own, strings.Split(s, ".")[2], "%s beats as another step: %s", r.User, s)
			}
		}
	}
	alert := roles[5]
	require.Contains(t, flat(alert.Publish), "jf.alert.r1")
	require.NotContains(t, flat(alert.Publish), "jf.alert.m1", "a mart rule's alerts come from the aggregator")
	require.Contains(t, flat(roles[4].Publish), "jf.alert.m1")
	require.Contains(t, flat(roles[3].Publish), "$JS.API.DIRECT.GET.KV_jf-lookup-fx.>")
	require.NotContains(t, flat(roles[3].Publish), "$KV.jf-lookup-fx.>", "transform reads lookup tables, never writes them")
}
