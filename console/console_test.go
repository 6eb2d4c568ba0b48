package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/console"
	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/subjects"
)

type testBundle struct {
	js  jetstream.JetStream
	nc  *nats.Conn
	seq uint64 // the dead letter published by setup
	// origSeq is the JF_INGEST sequence of the letter's whole record.
	origSeq uint64
}

// setup starts a server with the stage streams and one dead letter of
// validate/orders whose body was cut, as its headers say.
func setup(t *testing.T) *testBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	// The whole record, which a replay of the truncated letter fetches.
	orig, err := js.Publish(t.Context(), subjects.Ingest("orders"), []byte(`{"order_id":"o-1","note":"xxxxxxxx"}`))
	require.NoError(t, err)
	m := nats.NewMsg(subjects.DeadLetter("validate", "orders"))
	m.Data = []byte(`{"order_id":"o-1","note":"xxxx`)
	m.Header.Set(subjects.HeaderOrigSubject, subjects.Ingest("orders"))
	m.Header.Set(subjects.HeaderOrigStream, subjects.StreamIngest)
	m.Header.Set(subjects.HeaderOrigSeq, strconv.FormatUint(orig.Sequence, 10))
	m.Header.Set(subjects.HeaderReason, "validation failed: amount: want a number")
	m.Header.Set(subjects.HeaderTruncated, "true")
	m.Header.Set(subjects.HeaderOrigSize, "2000000")
	ack, err := js.PublishMsg(t.Context(), m)
	require.NoError(t, err)
	return &testBundle{js: js, nc: nc, seq: ack.Sequence, origSeq: orig.Sequence}
}

func serve(t *testing.T, b *testBundle, write bool) string {
	t.Helper()
	c, err := console.New(console.Config{JS: b.js, Conn: b.nc, Write: write, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, c.Stop(ctx))
	})
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return srv.URL
}

func call(t *testing.T, method, url, body string, into any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if into != nil {
		require.NoError(t, json.Unmarshal(data, into), string(data))
	}
	return resp.StatusCode
}

func TestPageAndAssets(t *testing.T) {
	t.Parallel()
	url := serve(t, setup(t), false)
	for path, want := range map[string]string{
		"/":                  "<title>jetfleet console</title>",
		"/console/app.js":    "function esc(",
		"/console/style.css": ".node",
	} {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, path)
		require.Contains(t, string(body), want, path)
		require.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'", path)
	}
	resp, err := http.Get(url + "/nothing-here")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode, "the console answers / and /console/ only")
}

func TestDeadLetterTruncatedMark(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := serve(t, b, false)
	var list struct {
		Letters []struct {
			Seq       uint64 `json:"seq"`
			Reason    string `json:"reason"`
			Truncated bool   `json:"truncated"`
			FullSize  int64  `json:"full_size"`
		} `json:"letters"`
		Matched int `json:"matched"`
	}
	require.Equal(t, http.StatusOK, call(t, http.MethodGet, url+"/console/api/deadletters?step=validate&reason=NUMBER", "", &list))
	require.Equal(t, 1, list.Matched, "the reason filter ignores case")
	require.True(t, list.Letters[0].Truncated)
	require.Equal(t, int64(2000000), list.Letters[0].FullSize)

	require.Equal(t, http.StatusOK, call(t, http.MethodGet, url+"/console/api/deadletters?reason=timeout", "", &list))
	require.Zero(t, list.Matched)
	require.Empty(t, list.Letters)
}

func TestWritesRefusedWithoutWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := serve(t, b, false)
	var e struct {
		Error string `json:"error"`
	}
	require.Equal(t, http.StatusForbidden, call(t, http.MethodPost, url+"/console/api/replay", `{"all":true}`, &e))
	require.Contains(t, e.Error, "--console-write")
	require.Equal(t, http.StatusForbidden, call(t, http.MethodPost, url+"/console/api/control", `{"op":"pause","target":"validate"}`, &e))

	// A dry run publishes nothing, so it is allowed.
	var dry struct {
		Counts map[string]int `json:"counts"`
	}
	require.Equal(t, http.StatusOK, call(t, http.MethodPost, url+"/console/api/replay", `{"all":true,"dry_run":true}`, &dry))
	require.Equal(t, 1, dry.Counts["would_publish"])
	s, err := b.js.Stream(t.Context(), subjects.StreamIngest)
	require.NoError(t, err)
	info, err := s.Info(t.Context())
	require.NoError(t, err)
	require.Equal(t, b.origSeq, info.State.LastSeq, "nothing replayed")
}

func TestReplayWithWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	url := serve(t, b, true)
	var e struct {
		Error string `json:"error"`
	}
	require.Equal(t, http.StatusBadRequest, call(t, http.MethodPost, url+"/console/api/replay", `{}`, &e), "an empty selection replays nothing")
	var res struct {
		Counts map[string]int `json:"counts"`
	}
	body, _ := json.Marshal(map[string]any{"seqs": []uint64{b.seq}})
	require.Equal(t, http.StatusOK, call(t, http.MethodPost, url+"/console/api/replay", string(bytes.TrimSpace(body)), &res))
	require.Equal(t, 1, res.Counts["published"])
	s, err := b.js.Stream(t.Context(), subjects.StreamIngest)
	require.NoError(t, err)
	m, err := s.GetLastMsgForSubject(t.Context(), subjects.Ingest("orders"))
	require.NoError(t, err)
	require.Equal(t, `{"order_id":"o-1","note":"xxxxxxxx"}`, string(m.Data), "a truncated letter is replayed whole, from its stream")
	require.Equal(t, b.origSeq+1, m.Sequence, "the replay is a new message")

	// Twice changes nothing: the mark skips it.
	require.Equal(t, http.StatusOK, call(t, http.MethodPost, url+"/console/api/replay", string(body), &res))
	require.Equal(t, 1, res.Counts["skipped"])

	require.Equal(t, http.StatusGatewayTimeout, call(t, http.MethodPost, url+"/console/api/control", `{"op":"pause","target":"validate"}`, &e),
		"no worker answers on this server")
	require.Contains(t, e.Error, "no worker answered")
}

func TestQueryWithoutMarts(t *testing.T) {
	t.Parallel()
	url := serve(t, setup(t), false)
	var e struct {
		Error string `json:"error"`
	}
	require.Equal(t, http.StatusNotFound, call(t, http.MethodGet, url+"/console/api/query?q=SELECT+1", "", &e))
	require.Contains(t, e.Error, "--data-dir")
}
