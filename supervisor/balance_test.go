package supervisor_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/supervisor"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// sinkAggregator stands in for the aggregator: it commits every record it
// gets and reports progress and a mart as the real one's files would.
type sinkAggregator struct {
	mu      sync.Mutex
	records int64
	lastSeq uint64
}

func (a *sinkAggregator) Handle(_ context.Context, rec workers.Record) ([]workers.Output, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.records++
	a.lastSeq = max(a.lastSeq, rec.Seq)
	return nil, nil
}

func (a *sinkAggregator) progress(context.Context) ([]marts.Progress, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return []marts.Progress{{Dataset: dataset, CommittedSeq: a.lastSeq, Records: a.records}}, nil
}

func (a *sinkAggregator) marts(context.Context) ([]supervisor.MartStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return []supervisor.MartStatus{{Name: "daily", Dataset: dataset, LastSeq: a.lastSeq}}, nil
}

// A record that vanishes between two steps (deleted from JF_VALID before
// transform read it) is in none of clean, dead-lettered and duplicates:
// status says so, counted in records (a bulk message is three), and
// WaitIdle does not call the fleet idle, naming the books.
func TestBalanceFlagsARecordInNoneOfThem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	agg := &sinkAggregator{}
	b.startSupervisor(t, func(c *supervisor.Config) {
		c.ProgressFunc, c.MartsFunc = agg.progress, agg.marts
	})
	validate := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if strings.Contains(string(rec.Data), "bad") {
			return nil, workers.Permanentf("amount must be positive")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, validate))

	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"a":2}`, `{"a":3}`, `{"a":4}`, `{"bad":1}`)
	bulk := nats.NewMsg(subjects.Ingest(dataset))
	bulk.Data = []byte("{\"b\":1}\n{\"b\":2}\n{\"b\":3}")
	bulk.Header.Set(subjects.HeaderRecords, "3")
	bulk.Header.Set(subjects.HeaderMsgID, "bulk-1")
	_, err := b.js.PublishMsg(t.Context(), bulk)
	require.NoError(t, err)

	// Before transform runs, one record leaves JF_VALID: deleted.
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		if n := b.streamMsgs(t, subjects.StreamValid, subjects.Valid(dataset)); n != 5 {
			return fmt.Errorf("%d valid messages", n)
		}
		return nil
	})
	valid, err := b.js.Stream(t.Context(), subjects.StreamValid)
	require.NoError(t, err)
	for seq := uint64(1); ; seq++ {
		m, err := valid.GetMsg(t.Context(), seq)
		require.NoError(t, err)
		if m.Header.Get(subjects.HeaderRecords) == "" { // a single record, not the bulk message
			require.NoError(t, valid.DeleteMsg(t.Context(), seq))
			break
		}
	}

	workertest.StartWorker(t, b.workerConfig(t, subjects.StepTransform, workers.Passthrough(subjects.CleanKey(dataset, subjects.KeyToken("k")))))
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepAggregate, agg))

	ctx, cancel := context.WithTimeout(t.Context(), embeddedtest.Timeout(5*time.Second))
	defer cancel()
	_, err = supervisor.WaitIdle(ctx, b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.ErrorIs(t, err, supervisor.ErrNotIdle)
	require.Contains(t, err.Error(), "orders: 1 record(s) unaccounted: published 8 = clean 6 + dead-lettered 1 + duplicates 0 + 1 in none of them")

	st := b.snapshot(t)
	require.Len(t, st.Balance, 1)
	bal := st.Balance[0]
	require.Equal(t, supervisor.DatasetBalance{
		Dataset: dataset, State: supervisor.BalanceUnaccounted, Published: 8, Clean: 6, DeadLettered: 1,
		DeadByStep: map[string]int64{"validate": 1}, Unaccounted: 1,
	}, bal)
	require.False(t, st.Healthy)
	require.Contains(t, st.Problems, "orders: "+"1 record(s) unaccounted: published 8 = clean 6 + dead-lettered 1 + duplicates 0 + 1 in none of them")
	var text strings.Builder
	require.NoError(t, supervisor.RenderText(&text, st, supervisor.TextOptions{}))
	require.Regexp(t, `(?m)^orders +8 +6 +1 +0 +0 +1 +unaccounted$`, text.String())
}

// While records flow the rest is in flight, and the books balance once
// the fleet is idle: clean + dead-lettered = published.
func TestBalanceBalancesWhenIdle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	agg := &sinkAggregator{}
	b.startSupervisor(t, func(c *supervisor.Config) {
		c.ProgressFunc, c.MartsFunc = agg.progress, agg.marts
	})
	validate := workers.HandlerFunc(func(_ context.Context, rec workers.Record) ([]workers.Output, error) {
		if strings.Contains(string(rec.Data), "bad") {
			return nil, workers.Permanentf("bad record")
		}
		return []workers.Output{{Subject: subjects.Valid(dataset), Data: rec.Data}}, nil
	})
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepValidate, validate))
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepTransform, workers.Passthrough(subjects.CleanKey(dataset, subjects.KeyToken("k")))))
	b.publish(t, subjects.Ingest(dataset), `{"a":1}`, `{"bad":2}`, `{"a":3}`)
	embeddedtest.CheckFor(t, 5*time.Second, embeddedtest.PollEvery, func() error {
		st := b.snapshot(t)
		if len(st.Balance) != 1 || st.Balance[0].State != supervisor.BalanceInFlight || st.Balance[0].InFlight != 2 {
			return fmt.Errorf("balance %+v", st.Balance)
		}
		return nil
	})
	workertest.StartWorker(t, b.workerConfig(t, subjects.StepAggregate, agg))
	st, err := supervisor.WaitIdle(t.Context(), b.js, supervisor.WaitIdleOptions{Poll: 20 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, []supervisor.DatasetBalance{{
		Dataset: dataset, State: supervisor.BalanceBalanced, Published: 3, Clean: 2, DeadLettered: 1,
		DeadByStep: map[string]int64{"validate": 1},
	}}, st.Balance)
	require.True(t, st.Healthy, st.Problems)
}

// A message JetStream gave up on that the supervisor cannot dead-letter
// (here JF_DLQ refuses its size) is listed as lost until a retry stores
// its dead letter.
func TestBalanceListsAMessageThatCouldNotBeDeadLettered(t *testing.T) {
	t.Parallel()
	b := setup(t)
	dlq, err := b.js.Stream(t.Context(), subjects.StreamDLQ)
	require.NoError(t, err)
	cfg := dlq.CachedInfo().Config
	cfg.MaxMsgSize = 16
	_, err = b.js.UpdateStream(t.Context(), cfg)
	require.NoError(t, err)
	b.startSupervisor(t, nil)

	ccfg, err := subjects.Consumer(subjects.StepValidate, dataset, subjects.ConsumerOptions{MaxDeliver: 1, AckWait: 5 * time.Second})
	require.NoError(t, err)
	cons, err := b.js.CreateOrUpdateConsumer(t.Context(), subjects.StreamIngest, ccfg)
	require.NoError(t, err)
	seq := b.publish(t, subjects.Ingest(dataset), `{"id":"a record too big for its dead letter"}`)[0]
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(embeddedtest.Timeout(2*time.Second)))
	require.NoError(t, err)
	m := <-batch.Messages()
	require.NotNil(t, m)
	require.NoError(t, m.Nak())
	batch, err = cons.Fetch(1, jetstream.FetchMaxWait(300*time.Millisecond)) // the server notices the exceeded count
	require.NoError(t, err)
	for range batch.Messages() {
		t.Fatal("delivered beyond MaxDeliver")
	}

	var st *supervisor.Status
	embeddedtest.CheckFor(t, 10*time.Second, embeddedtest.PollEvery, func() error {
		st = b.snapshot(t)
		for _, bal := range st.Balance {
			if len(bal.Lost) == 1 {
				return nil
			}
		}
		return fmt.Errorf("nothing lost yet: %+v", st.Balance)
	})
	lost := st.Balance[0].Lost[0]
	require.Equal(t, subjects.StreamIngest, lost.Stream)
	require.Equal(t, seq, lost.Seq)
	require.Equal(t, "validate", lost.Step)
	require.Equal(t, int64(1), lost.Records)
	require.Contains(t, lost.Reason, "could not be dead-lettered")
	require.False(t, st.Healthy)
	require.Contains(t, strings.Join(st.Problems, "\n"), fmt.Sprintf("JF_INGEST seq %d (validate/orders)", seq))
	require.Contains(t, st.Busy(), "could not be dead-lettered")

	cfg.MaxMsgSize = 0
	_, err = b.js.UpdateStream(t.Context(), cfg)
	require.NoError(t, err)
	embeddedtest.CheckFor(t, 15*time.Second, embeddedtest.PollEvery, func() error {
		st = b.snapshot(t)
		if st.DeadLetters != 1 {
			return errors.New("no dead letter yet")
		}
		for _, bal := range st.Balance {
			if len(bal.Lost) > 0 {
				return errors.New("still marked lost")
			}
		}
		return nil
	})
}
