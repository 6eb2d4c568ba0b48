package subjects

import (
	"regexp"
	"strings"

	"golang.org/x/mod/semver"
)

// MicroServicePrefix starts the NATS micro service name of every jetfleet
// process: `nats micro ls` lists jetfleet-validate, jetfleet-transform,
// jetfleet-aggregate and jetfleet-supervisor.
const MicroServicePrefix = "jetfleet-"

// ServiceName is the micro service name of the workers of step (or of
// "supervisor").
func ServiceName(step string) string { return MicroServicePrefix + step }

// Names of the micro endpoints a worker serves. Both carry the control
// requests of jetfleet ctl and the supervisor's pings.
const (
	EndpointControl     = "control"      // jf.ctl.step.<step>.<worker>
	EndpointControlStep = "control-step" // jf.ctl.step.<step>, every worker of the step
)

// semVerCoreRE is the release at the start of a version that is not a
// semantic version as a whole (1.2.3 of 1.2.3.4).
var semVerCoreRE = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)`)

// gitDescribeRE is what git describe appends to a tag: commits since it,
// the commit, and a dirty mark.
var gitDescribeRE = regexp.MustCompile(`^-\d+-g[0-9a-f]+(-dirty)?$`)

// SemVer turns a build version into one micro accepts: a semantic
// version is kept (without a leading v); git describe output such as
// v1.2.3-4-gabcdef-dirty keeps its release and moves the rest into build
// metadata (1.2.3+4-gabcdef-dirty: newer than 1.2.3, not a pre-release);
// anything else (dev, a bare hash) becomes 0.0.0+<it>.
func SemVer(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	core, rest := "0.0.0", v
	if m := semVerCoreRE.FindString(v); m != "" {
		core, rest = m, v[len(m):]
	}
	// A git describe suffix reads as a pre-release in semver, which would
	// sort before its tag; it is build metadata.
	if isSemVer(v) && !gitDescribeRE.MatchString(rest) {
		return v
	}
	rest = strings.TrimLeft(rest, "-+.")
	rest = strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' {
			return r
		}
		return '-'
	}, rest)
	if rest == "" {
		return core
	}
	return core + "+" + rest
}

// isSemVer reports whether v (without a leading v) is a semantic version
// 2.0.0, as micro requires: x/mod/semver's syntax, minus the shorthands
// v1 and v1.2 that it also accepts (canonical form is then longer).
func isSemVer(v string) bool {
	sv := "v" + v
	return semver.IsValid(sv) && semver.Canonical(sv) == strings.TrimSuffix(sv, semver.Build(sv))
}
