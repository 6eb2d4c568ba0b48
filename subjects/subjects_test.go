package subjects_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

func TestBuildersRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		subject string
		want    subjects.Parsed
	}{
		{subjects.Ingest("orders"), subjects.Parsed{Kind: subjects.KindIngest, Dataset: "orders"}},
		{subjects.Valid("orders"), subjects.Parsed{Kind: subjects.KindValid, Dataset: "orders"}},
		{subjects.Clean("o-2"), subjects.Parsed{Kind: subjects.KindClean, Dataset: "o-2"}},
		{subjects.CleanKey("o-2", "00ff"), subjects.Parsed{Kind: subjects.KindClean, Dataset: "o-2", KeyToken: "00ff"}},
		{subjects.CleanPartition("o-2", 7, "00ff"), subjects.Parsed{Kind: subjects.KindClean, Dataset: "o-2", KeyToken: "00ff", Partition: 7, Partitioned: true}},
		{subjects.DeadLetter("validate", "orders"), subjects.Parsed{Kind: subjects.KindDLQ, Step: "validate", Dataset: "orders"}},
		{subjects.Heartbeat("transform", "host-1"), subjects.Parsed{Kind: subjects.KindHeartbeat, Step: "transform", Worker: "host-1"}},
		{subjects.Control("transform", "w1"), subjects.Parsed{Kind: subjects.KindControl, Step: "transform", Worker: "w1"}},
		{subjects.ControlStep("transform"), subjects.Parsed{Kind: subjects.KindControl, Step: "transform"}},
		{subjects.Alert("big_order"), subjects.Parsed{Kind: subjects.KindAlert, Rule: "big_order"}},
		{subjects.SupEvents, subjects.Parsed{Kind: subjects.KindSup, Name: "events"}},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			t.Parallel()
			got, err := subjects.Parse(tt.subject)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	require.Equal(t, "jf.ingest.orders", subjects.Ingest("orders"))
	require.Equal(t, "jf.dlq.validate.orders", subjects.DeadLetter("validate", "orders"))
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "jf", "jf.ingest", "x.ingest.orders", "jf.ingest.*", "jf.ingest.>", "jf.ingest.a.b", "jf.nope.orders", "jf.dlq.validate", "jf.ingest. "} {
		_, err := subjects.Parse(s)
		require.ErrorIs(t, err, subjects.ErrNotJetfleetSubject, s)
	}
}

func TestValidateToken(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"orders", "Orders_2", "a", "x-y", strings.Repeat("a", 64)} {
		require.NoError(t, subjects.ValidateToken("dataset", ok), ok)
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "_a", "-a", "é", "\xff", strings.Repeat("a", 65), "a\x00"} {
		require.ErrorIs(t, subjects.ValidateToken("dataset", bad), subjects.ErrInvalidToken, bad)
	}
}

func TestDeriveMsgID(t *testing.T) {
	t.Parallel()
	a := subjects.DeriveMsgID("s-1", "validate", 0)
	require.Equal(t, a, subjects.DeriveMsgID("s-1", "validate", 0), "derivation must be deterministic")
	require.NotEqual(t, a, subjects.DeriveMsgID("s-1", "validate", 1))
	require.NotEqual(t, a, subjects.DeriveMsgID("s-1", "transform", 0))
	require.NotEqual(t, a, subjects.DeriveMsgID("s-2", "validate", 0))
	long := subjects.DeriveMsgID(strings.Repeat("x", 300), "validate", 0)
	require.LessOrEqual(t, len(long), 128)
	require.NotEqual(t, subjects.DeadLetterMsgID("s-1", "validate", 0), a)
	replay := subjects.ReplayMsgID(7)
	require.Equal(t, replay, subjects.ReplayMsgID(7), "derived, so the same on every call")
}

func TestConsumerName(t *testing.T) {
	t.Parallel()
	name := subjects.ConsumerName("validate", "my_orders")
	step, ds, ok := subjects.ParseConsumerName(name)
	require.True(t, ok)
	require.Equal(t, "validate", step)
	require.Equal(t, "my_orders", ds)
	cfg, err := subjects.Consumer(subjects.StepValidate, "orders", subjects.ConsumerOptions{})
	require.NoError(t, err)
	require.Equal(t, "jf.ingest.orders", cfg.FilterSubject)
	require.Positive(t, cfg.MaxDeliver, "MaxDeliver must be finite")
	require.Positive(t, cfg.MaxAckPending)
	_, err = subjects.Consumer(subjects.StepIngest, "orders", subjects.ConsumerOptions{})
	require.Error(t, err, "ingest consumes no stage")
	_, err = subjects.Consumer(subjects.StepValidate, "a.b", subjects.ConsumerOptions{})
	require.ErrorIs(t, err, subjects.ErrInvalidToken)
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"jf.ingest.orders", "jf.dlq.validate.orders", "jf.hb.a.b", "jf..x", "jf.ingest.\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := subjects.Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must rebuild to the same subject.
		var rebuilt string
		switch p.Kind {
		case subjects.KindIngest:
			rebuilt = subjects.Ingest(p.Dataset)
		case subjects.KindValid:
			rebuilt = subjects.Valid(p.Dataset)
		case subjects.KindClean:
			switch {
			case p.Partitioned:
				rebuilt = subjects.CleanPartition(p.Dataset, p.Partition, p.KeyToken)
			case p.KeyToken != "":
				rebuilt = subjects.CleanKey(p.Dataset, p.KeyToken)
			default:
				rebuilt = subjects.Clean(p.Dataset)
			}
		case subjects.KindDLQ:
			rebuilt = subjects.DeadLetter(p.Step, p.Dataset)
		case subjects.KindHeartbeat:
			rebuilt = subjects.Heartbeat(p.Step, p.Worker)
		case subjects.KindControl:
			rebuilt = subjects.ControlStep(p.Step)
			if p.Worker != "" {
				rebuilt = subjects.Control(p.Step, p.Worker)
			}
		case subjects.KindAlert:
			rebuilt = subjects.Alert(p.Rule)
		case subjects.KindSup:
			rebuilt = subjects.Supervisor(p.Name)
		}
		if rebuilt != s {
			t.Fatalf("Parse(%q) = %+v rebuilds to %q", s, p, rebuilt)
		}
	})
}

func FuzzValidateToken(f *testing.F) {
	for _, s := range []string{"orders", "a.b", "*", ">", " ", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if subjects.ValidateToken("x", s) != nil {
			return
		}
		if strings.ContainsAny(s, ".*> \t\r\n") || s == "" {
			t.Fatalf("accepted token %q breaks subjects", s)
		}
		if _, err := subjects.Parse(subjects.Ingest(s)); err != nil {
			t.Fatalf("valid token %q does not parse back: %v", s, err)
		}
	})
}
