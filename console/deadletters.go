package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/supervisor"
)

// The console reaches dead letters only through listLetters, getLetter
// and replayLetters below, over the functions `jetfleet dlq` uses, so a
// change to how dead letters are stored or replayed meets the console in
// these three places.

// letterFilter selects dead letters: step and dataset as `dlq ls` does,
// and a case-insensitive substring of the reason.
type letterFilter struct {
	Step, Dataset, Reason string
}

func (f letterFilter) match(d *supervisor.DeadLetter) bool {
	return f.Reason == "" || strings.Contains(strings.ToLower(d.Reason), strings.ToLower(f.Reason))
}

// letter is a dead letter as the page shows it.
type letter struct {
	supervisor.DeadLetter
	// Body is the stored body as text (at most maxBody bytes of it in a
	// listing's excerpt).
	Body string `json:"body"`
	// Truncated says the stored body is not the whole original, as a
	// header of the dead letter says; FullSize is the original's size
	// when the header gives it.
	Truncated bool  `json:"truncated"`
	FullSize  int64 `json:"full_size,omitempty"`
}

// maxScan bounds the dead letters one listing reads; maxShown the ones
// it returns (the newest).
const (
	maxScan  = 5000
	maxShown = 200
	excerpt  = 160
)

func toLetter(d supervisor.DeadLetter, bodyMax int) letter {
	l := letter{DeadLetter: d}
	l.Truncated, l.FullSize = truncation(d)
	body := d.Data
	if bodyMax > 0 && len(body) > bodyMax {
		body = body[:bodyMax]
		for len(body) > 0 && !utf8.Valid(body) {
			body = body[:len(body)-1]
		}
	}
	l.Body = strings.ToValidUTF8(string(body), "\uFFFD")
	return l
}

// truncation says whether a dead letter's body was cut to fit the stream
// (subjects.HeaderTruncated) and the original's size.
func truncation(d supervisor.DeadLetter) (bool, int64) {
	if !d.Truncated {
		return false, 0
	}
	return true, int64(d.OrigSize)
}

// listLetters returns the newest dead letters matching f (at most
// maxShown, newest first) and how many matched.
func listLetters(ctx context.Context, js jetstream.JetStream, f letterFilter) ([]supervisor.DeadLetter, int, error) {
	dls, err := supervisor.ListDeadLetters(ctx, js, supervisor.DLQFilter{Step: f.Step, Dataset: f.Dataset, Limit: maxScan})
	if err != nil {
		return nil, 0, err
	}
	var out []supervisor.DeadLetter
	for i := range dls {
		if f.match(&dls[i]) {
			out = append(out, dls[i])
		}
	}
	n := len(out)
	slices.Reverse(out)
	if len(out) > maxShown {
		out = out[:maxShown]
	}
	return out, n, nil
}

func getLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (*supervisor.DeadLetter, error) {
	return supervisor.GetDeadLetter(ctx, js, seq)
}

// replayLetters replays the dead letters seqs names or, with none, every
// one f matches; dryRun only says what would be replayed.
func replayLetters(ctx context.Context, js jetstream.JetStream, f letterFilter, seqs []uint64, dryRun bool) ([]supervisor.ReplayResult, error) {
	if len(seqs) == 0 {
		dls, err := supervisor.ListDeadLetters(ctx, js, supervisor.DLQFilter{Step: f.Step, Dataset: f.Dataset, Limit: maxScan})
		if err != nil {
			return nil, err
		}
		for i := range dls {
			if f.match(&dls[i]) {
				seqs = append(seqs, dls[i].Seq)
			}
		}
		if len(seqs) == 0 {
			return []supervisor.ReplayResult{}, nil
		}
	}
	return supervisor.Replay(ctx, js, supervisor.ReplayOptions{
		DLQFilter: supervisor.DLQFilter{Step: f.Step, Dataset: f.Dataset}, Seqs: seqs, DryRun: dryRun,
	})
}

// lettersDoc is a listing.
type lettersDoc struct {
	Letters []letter `json:"letters"`
	// Matched is how many dead letters matched; Letters holds the newest.
	Matched int `json:"matched"`
}

func filterOf(r *http.Request) letterFilter {
	q := r.URL.Query()
	return letterFilter{Step: q.Get("step"), Dataset: q.Get("dataset"), Reason: strings.TrimSpace(q.Get("reason"))}
}

func (c *Console) serveLetters(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	dls, n, err := listLetters(ctx, c.cfg.JS, filterOf(r))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "dead letters: "+err.Error())
		return
	}
	doc := lettersDoc{Letters: make([]letter, 0, len(dls)), Matched: n}
	for _, d := range dls {
		l := toLetter(d, excerpt)
		l.Header = nil // the list shows what the headers say; one letter shows them
		doc.Letters = append(doc.Letters, l)
	}
	writeJSON(w, http.StatusOK, doc)
}

func (c *Console) serveLetter(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil || seq == 0 {
		writeError(w, http.StatusBadRequest, "bad dead letter sequence "+strconv.Quote(r.PathValue("seq")))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	d, err := getLetter(ctx, c.cfg.JS, seq)
	if errors.Is(err, supervisor.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no dead letter "+strconv.FormatUint(seq, 10))
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, toLetter(*d, 0))
}

// replayRequest is the body of POST /console/api/replay.
type replayRequest struct {
	Seqs    []uint64 `json:"seqs"`
	Step    string   `json:"step"`
	Dataset string   `json:"dataset"`
	Reason  string   `json:"reason"`
	// All replays every dead letter of the filter; without it Seqs must
	// name some, so an empty selection never replays everything.
	All    bool `json:"all"`
	DryRun bool `json:"dry_run"`
}

type replayDoc struct {
	Results []supervisor.ReplayResult `json:"results"`
	DryRun  bool                      `json:"dry_run"`
	Counts  map[string]int            `json:"counts"`
}

func (c *Console) serveReplay(w http.ResponseWriter, r *http.Request) {
	var req replayRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad replay request: "+err.Error())
		return
	}
	if !req.DryRun && !c.cfg.Write {
		writeError(w, http.StatusForbidden, refuseWrite)
		return
	}
	if len(req.Seqs) == 0 && !req.All {
		writeError(w, http.StatusBadRequest, "name the dead letters to replay, or all of the filter")
		return
	}
	if req.All {
		req.Seqs = nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	res, err := replayLetters(ctx, c.cfg.JS, letterFilter{Step: req.Step, Dataset: req.Dataset, Reason: strings.TrimSpace(req.Reason)}, req.Seqs, req.DryRun)
	if err != nil {
		code := http.StatusServiceUnavailable
		if errors.Is(err, supervisor.ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, "replay: "+err.Error())
		return
	}
	doc := replayDoc{Results: res, DryRun: req.DryRun, Counts: map[string]int{}}
	for _, x := range res {
		doc.Counts[x.Outcome]++
	}
	if !req.DryRun {
		c.log.Info().Int("dead_letters", len(res)).Int("published", doc.Counts[supervisor.ReplayPublished]).Str("remote", r.RemoteAddr).Msg("replayed from the console")
	}
	writeJSON(w, http.StatusOK, doc)
}
