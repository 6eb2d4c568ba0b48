package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

// TestOutsideClientNodeJS publishes with the official npm nats client, a
// real peer that shares none of our code.
func TestOutsideClientNodeJS(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("installs an npm package")
	}
	if _, err := exec.LookPath("npm"); err != nil {
		t.Skip("npm not installed")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "publish.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "outside", f))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), b, 0o600))
	}
	install := exec.CommandContext(t.Context(), "npm", "install", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	out, err := install.CombinedOutput()
	require.NoError(t, err, "npm install: %s", out)

	dev := startDev(t, t.TempDir(), "--pipeline", passthrough)
	node := exec.CommandContext(t.Context(), "node", "publish.js", "200")
	node.Dir = dir
	node.Env = append(os.Environ(), "NATS_URL="+dev.url)
	out, err = node.CombinedOutput()
	require.NoError(t, err, "node: %s", out)
	require.Contains(t, string(out), "published 201 messages")

	// Run again: the server drops every record as a duplicate.
	node = exec.CommandContext(t.Context(), "node", "publish.js", "200")
	node.Dir = dir
	node.Env = append(os.Environ(), "NATS_URL="+dev.url)
	out, err = node.CombinedOutput()
	require.NoError(t, err, "node: %s", out)

	// The bulk message's two records become one clean chunk per key
	// partition they fall in.
	wantClean := uint64(201)
	if subjects.PartitionOf(subjects.KeyToken("js-bulk-0"), subjects.DefaultPartitions) != subjects.PartitionOf(subjects.KeyToken("js-bulk-1"), subjects.DefaultPartitions) {
		wantClean++
	}
	embeddedtest.WaitFor(t, time.Minute, "clean records", func() bool { return embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean) >= wantClean })
	require.Equal(t, uint64(201), embeddedtest.StreamMsgs(t, dev.js, subjects.StreamIngest))
	require.Equal(t, wantClean, embeddedtest.StreamMsgs(t, dev.js, subjects.StreamClean))
}
