package subjects_test

import (
	"testing"

	"github.com/nats-io/nats.go/micro"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestSemVer: every build version becomes one micro accepts, and a real
// semantic version stays what it was.
func TestSemVer(t *testing.T) {
	t.Parallel()
	nc, _ := embeddedtest.JetStream(t)
	for in, want := range map[string]string{
		"":                        "0.0.0",
		"dev":                     "0.0.0+dev",
		"v1.2.3":                  "1.2.3",
		"1.2.3-rc.1":              "1.2.3-rc.1",
		"v1.2.3-4-gabc1234":       "1.2.3+4-gabc1234",
		"v1.2.3-4-gabc1234-dirty": "1.2.3+4-gabc1234-dirty",
		"abc1234":                 "0.0.0+abc1234",
		"v1.2":                    "0.0.0+1-2",
		"feature/x y":             "0.0.0+feature-x-y",
		"1.02.3":                  "0.0.0+1-02-3",
	} {
		got := subjects.SemVer(in)
		require.Equal(t, want, got, "SemVer(%q)", in)
		svc, err := micro.AddService(nc, micro.Config{Name: "semver-test", Version: got})
		require.NoError(t, err, "micro accepts %q", got)
		require.NoError(t, svc.Stop())
	}
}
