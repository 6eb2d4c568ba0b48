package supervisor

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
)

// DatasetBalance is the books of one dataset (docs/status.md, "The
// balance"): every record published is clean, dead-lettered, a duplicate
// or still in flight. Counts are records.
type DatasetBalance struct {
	Dataset string `json:"dataset"`
	// State is balanced, in_flight (work under way: the rest is in flight),
	// unaccounted (nothing under way and records in none of the four),
	// over (more accounted than published) or unknown (see Note).
	State string `json:"state"`
	// Published is records stored in JF_INGEST (replays included), as the
	// supervisor's ledger counted them.
	Published int64 `json:"published"`
	// Clean is distinct records committed by the aggregator; Duplicates
	// the records it dropped by key.
	Clean      int64 `json:"clean"`
	Duplicates int64 `json:"duplicates"`
	// DeadLettered is records dead-lettered by the steps on the way to the
	// marts (validate, transform, rekey, aggregate), by step in DeadByStep.
	DeadLettered int64            `json:"dead_lettered"`
	DeadByStep   map[string]int64 `json:"dead_by_step,omitempty"`
	// InFlight is Published less the rest while work is under way;
	// Unaccounted the same once nothing is: records in none of the four.
	InFlight    int64 `json:"in_flight"`
	Unaccounted int64 `json:"unaccounted"`
	// Lost are messages known to be in none of them: JetStream gave up on
	// them and the supervisor could not dead-letter them.
	Lost []LostMessage `json:"lost,omitempty"`
	// Note says why the state is unknown, what is under way, or what an
	// inexact count means.
	Note string `json:"note,omitempty"`
	// counting is set while the ledger has not counted every message of
	// JF_INGEST or JF_DLQ yet: the books are not known, so not idle.
	counting bool
}

// Balance states.
const (
	BalanceBalanced    = "balanced"
	BalanceInFlight    = "in_flight"
	BalanceUnaccounted = "unaccounted"
	BalanceOver        = "over"
	BalanceUnknown     = "unknown"
)

// LostMessage is a message JetStream gave up on (max deliveries, or
// terminated) that the supervisor could not dead-letter: the value of
// lost.<stream>.<seq> in the fleet bucket. The supervisor keeps trying
// while the message is in its stream and removes the mark once it has
// dead-lettered it.
type LostMessage struct {
	Stream   string    `json:"stream"`
	Seq      uint64    `json:"seq"`
	Subject  string    `json:"subject,omitempty"`
	Step     string    `json:"step"`
	Dataset  string    `json:"dataset"`
	Consumer string    `json:"consumer"`
	Records  int64     `json:"records"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// balanceSteps are the steps whose dead letters leave the way to the
// marts. The alert step is a branch beside the aggregator (its dead
// letters are records the marts hold too), and the ingest step's failures
// never reached JF_INGEST.
var balanceSteps = []string{
	subjects.StepValidate.Name, subjects.StepTransform.Name, subjects.StepRekey.Name, subjects.StepAggregate.Name,
}

// ProgressFunc reports what each dataset's aggregator committed; the
// supervisor and [Snapshot] call it. It must be safe for concurrent use.
type ProgressFunc func(ctx context.Context) ([]marts.Progress, error)

// DirProgress reports the progress files under dataDir
// (state/<dataset>.progress.json, written by the aggregators).
func DirProgress(dataDir string) ProgressFunc {
	return func(context.Context) ([]marts.Progress, error) {
		return marts.ReadProgress(dataDir)
	}
}

// WithProgress reads the aggregators' progress from f instead of the
// fleet bucket.
func WithProgress(f ProgressFunc) SnapshotOption {
	return func(o *snapshotOpts) error {
		if f == nil {
			return fmt.Errorf("%w: nil ProgressFunc", ErrInvalidConfig)
		}
		o.progress = f
		return nil
	}
}

// writeProgress publishes the aggregators' progress to the fleet bucket
// (when it changed), so status sees it from any machine.
func (s *Supervisor) writeProgress(ctx context.Context) {
	if s.cfg.ProgressFunc == nil {
		return
	}
	progress, err := s.cfg.ProgressFunc(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("aggregator progress")
		return
	}
	slices.SortFunc(progress, func(a, b marts.Progress) int { return cmp.Compare(a.Dataset, b.Dataset) })
	data, _ := json.Marshal(progress)
	s.mu.Lock()
	same := string(data) == string(s.progJSON)
	s.mu.Unlock()
	if same {
		return
	}
	if _, err := s.kv.Put(ctx, subjects.KeyProgress, data); err != nil {
		s.log.Warn().Err(err).Msg("write progress")
		return
	}
	s.mu.Lock()
	s.progJSON = data
	s.mu.Unlock()
}

// markLost records a message the supervisor could not dead-letter.
func (s *Supervisor) markLost(ctx context.Context, m LostMessage) {
	if err := putTTL(ctx, s.js, subjects.KeyLost(m.Stream, m.Seq), m, 0); err != nil {
		s.log.Warn().Err(err).Msg("record a message that could not be dead-lettered")
	}
}

// unmarkLost removes the mark once the message is dead-lettered.
func (s *Supervisor) unmarkLost(ctx context.Context, stream string, seq uint64) {
	if err := s.kv.Delete(ctx, subjects.KeyLost(stream, seq)); err != nil {
		s.log.Debug().Err(err).Msg("remove lost mark")
	}
}

// balanceInputs are what [Snapshot] read for the books.
type balanceInputs struct {
	ledgers  map[string]*LedgerState
	progress []marts.Progress
	// progressKnown is false when no aggregator progress was reported at
	// all (no supervisor with --data-dir).
	progressKnown bool
	lost          []LostMessage
	// lastSeq is each ledger stream's last sequence at the snapshot.
	lastSeq map[string]uint64
}

// readBalanceInputs reads the ledgers, progress and lost marks.
func readBalanceInputs(ctx context.Context, kv jetstream.KeyValue, o snapshotOpts, st *Status) (*balanceInputs, error) {
	in := &balanceInputs{lastSeq: map[string]uint64{}}
	var err error
	if in.ledgers, err = readLedgers(ctx, kv); err != nil {
		return nil, err
	}
	if o.progress != nil {
		in.progress, err = o.progress(ctx)
		if err != nil {
			st.Problems = append(st.Problems, "aggregator progress: "+err.Error())
		}
		in.progressKnown = err == nil
	} else if kv != nil {
		if e, err := kv.Get(ctx, subjects.KeyProgress); err == nil {
			in.progressKnown = json.Unmarshal(e.Value(), &in.progress) == nil
		}
	}
	lost, err := readAll(ctx, kv, subjects.KeyPrefixLost)
	if err != nil {
		return nil, err
	}
	for _, v := range lost {
		var m LostMessage
		if json.Unmarshal(v, &m) == nil && m.Stream != "" {
			in.lost = append(in.lost, m)
		}
	}
	slices.SortFunc(in.lost, func(a, b LostMessage) int {
		return cmp.Or(cmp.Compare(a.Stream, b.Stream), cmp.Compare(a.Seq, b.Seq))
	})
	for _, ss := range st.Streams {
		in.lastSeq[ss.Name] = ss.LastSeq
	}
	in.lastSeq[subjects.StreamDLQ] = st.dlqLastSeq
	return in, nil
}

// addBalance works out each dataset's books. It runs after the steps,
// marts and supervisor are known, before judge.
func addBalance(st *Status, in *balanceInputs) {
	datasets := map[string]bool{}
	ingest, dlq := in.ledgers[subjects.StreamIngest], in.ledgers[subjects.StreamDLQ]
	if ingest != nil {
		for ds := range ingest.Datasets {
			datasets[ds] = true
		}
	}
	for _, p := range in.progress {
		datasets[p.Dataset] = true
	}
	for _, s := range st.Steps {
		if s.Stream == subjects.StreamIngest {
			datasets[s.Dataset] = true
		}
	}
	for _, m := range in.lost {
		datasets[m.Dataset] = true
	}
	names := make([]string, 0, len(datasets))
	for ds := range datasets {
		names = append(names, ds)
	}
	slices.Sort(names)
	st.Balance = make([]DatasetBalance, 0, len(names))
	for _, ds := range names {
		st.Balance = append(st.Balance, balanceOf(st, in, ingest, dlq, ds))
	}
}

func balanceOf(st *Status, in *balanceInputs, ingest, dlq *LedgerState, ds string) DatasetBalance {
	b := DatasetBalance{Dataset: ds}
	for _, m := range in.lost {
		if m.Dataset == ds {
			b.Lost = append(b.Lost, m)
		}
	}
	if ingest != nil && ingest.Datasets[ds] != nil {
		b.Published = ingest.Datasets[ds].Records
	}
	if dlq != nil && dlq.Datasets[ds] != nil {
		for _, step := range balanceSteps {
			if n := dlq.Datasets[ds].Steps[step]; n > 0 {
				if b.DeadByStep == nil {
					b.DeadByStep = map[string]int64{}
				}
				b.DeadByStep[step] = n
				b.DeadLettered += n
			}
		}
	}
	var committed bool
	for _, p := range in.progress {
		if p.Dataset == ds {
			b.Clean, b.Duplicates, committed = p.Records, p.Duplicates, true
		}
	}
	rest := b.Published - b.Clean - b.DeadLettered - b.Duplicates
	unknown := func(why string) DatasetBalance {
		b.State, b.Note = BalanceUnknown, why
		b.InFlight = max(rest, 0)
		return b
	}
	switch {
	case ingest == nil || dlq == nil:
		return unknown("not counted: no supervisor has counted the streams yet (records are counted from JF_INGEST and JF_DLQ as they are stored)")
	case ingest.Error != "" || dlq.Error != "":
		return unknown("counting stopped: " + cmp.Or(ingest.Error, dlq.Error))
	case !in.progressKnown:
		return unknown("no aggregator progress reported (run the supervisor with --data-dir of the aggregators)")
	case !committed && b.Published > 0 && !hasStep(st, subjects.StepAggregate.Name, ds):
		return unknown("no aggregator for this dataset: clean records are not counted")
	}
	behind := func(l *LedgerState) bool { return l.Through < in.lastSeq[l.Stream] }
	if (behind(ingest) || behind(dlq)) && !st.Supervisor.Up {
		return unknown(fmt.Sprintf("the supervisor is down: JF_INGEST counted up to seq %d of %d, JF_DLQ up to %d of %d",
			ingest.Through, in.lastSeq[ingest.Stream], dlq.Through, in.lastSeq[dlq.Stream]))
	}
	busy := st.busy(ds)
	switch {
	case behind(ingest):
		busy, b.counting = fmt.Sprintf("counting JF_INGEST (seq %d of %d)", ingest.Through, in.lastSeq[ingest.Stream]), true
	case behind(dlq):
		busy, b.counting = fmt.Sprintf("counting JF_DLQ (seq %d of %d)", dlq.Through, in.lastSeq[dlq.Stream]), true
	case busy == "" && rest > 0 && !hasStep(st, subjects.StepAggregate.Name, ds):
		// Without an aggregate consumer the records waiting in JF_CLEAN show
		// as no step's pending: they are in flight, not lost.
		busy = "no aggregate consumer: clean records wait in " + subjects.StreamClean
	}
	switch {
	case busy != "":
		b.State, b.InFlight, b.Note = BalanceInFlight, max(rest, 0), busy
	case rest == 0:
		b.State = BalanceBalanced
	case rest > 0:
		b.State, b.Unaccounted = BalanceUnaccounted, rest
		if dlq.Missed > 0 {
			// Dead letters that left JF_DLQ uncounted may be the missing
			// records: say so rather than cry loss.
			b.Note = fmt.Sprintf("inexact: %d dead letter(s) left JF_DLQ before the supervisor counted them (purged or expired while it was down)", dlq.Missed)
		}
	default:
		b.State = BalanceOver
		b.Note = fmt.Sprintf("%d record(s) more accounted than published: replays into a later stage, a redelivery after the de-duplication window, or records published before the ledger began", -rest)
	}
	if ingest.Missed > 0 && b.Note == "" {
		b.Note = fmt.Sprintf("%d message(s) left JF_INGEST before the supervisor counted them: published is low by their records", ingest.Missed)
	}
	return b
}

func hasStep(st *Status, step, ds string) bool { return findStep(st.Steps, step, ds) >= 0 }

// balanceProblems adds to judge what the books say.
func balanceProblems(st *Status) {
	for _, b := range st.Balance {
		for _, m := range b.Lost {
			st.Problems = append(st.Problems, fmt.Sprintf("%s seq %d (%s/%s): %s; it is in no stream, mart or dead letter", m.Stream, m.Seq, m.Step, m.Dataset, m.Reason))
		}
		switch b.State {
		case BalanceUnaccounted:
			msg := fmt.Sprintf("%s: %s", b.Dataset, b.equation())
			if b.Note != "" {
				st.Notes = append(st.Notes, msg+" ("+b.Note+")")
			} else {
				st.Problems = append(st.Problems, msg)
			}
		case BalanceOver:
			st.Notes = append(st.Notes, fmt.Sprintf("%s: %s", b.Dataset, b.Note))
		}
	}
}

// equation is the books of an unbalanced dataset in one line.
func (b DatasetBalance) equation() string {
	return fmt.Sprintf("%d record(s) unaccounted: published %d = clean %d + dead-lettered %d + duplicates %d + %d in none of them",
		b.Unaccounted, b.Published, b.Clean, b.DeadLettered, b.Duplicates, b.Unaccounted)
}

// unbalanced says what the books hold against idleness, "" if nothing.
func (s *Status) unbalanced() string {
	var out []string
	for _, b := range s.Balance {
		if b.State == BalanceUnaccounted && b.Note == "" {
			out = append(out, b.Dataset+": "+b.equation())
		}
		if b.counting {
			// A dead letter the supervisor stored a moment ago is not in
			// the books yet: idle now would report them short of it.
			out = append(out, b.Dataset+": "+b.Note)
		}
		for _, m := range b.Lost {
			out = append(out, fmt.Sprintf("%s seq %d (%s/%s) could not be dead-lettered: %s", m.Stream, m.Seq, m.Step, m.Dataset, m.Reason))
		}
	}
	return strings.Join(out, "; ")
}
