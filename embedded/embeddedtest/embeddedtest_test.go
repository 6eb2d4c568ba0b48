package embeddedtest_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// TestStreamReading: counts and reads, whole and by subject, of a stream
// that another goroutine is still filling.
func TestStreamReading(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	require.Zero(t, embeddedtest.StreamMsgs(t, js, "S"), "a stream not there yet holds nothing")
	require.Zero(t, embeddedtest.SubjectMsgs(t, js, "S", "s.a"))
	_, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}})
	require.NoError(t, err)
	published := make(chan error, 1)
	go func() {
		for i := range 1200 { // more than one fetch of ReadStream
			subject := "s.a"
			if i%3 == 0 {
				subject = "s.b"
			}
			if _, err := js.Publish(t.Context(), subject, []byte(strconv.Itoa(i))); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	all := embeddedtest.WaitStream(t, js, "S", 1200, 10*time.Second)
	require.NoError(t, embeddedtest.WaitOrTimeout(t, published, 10*time.Second, "the publisher"))
	for i, m := range all {
		require.Equal(t, uint64(i+1), m.Sequence)
		require.Equal(t, strconv.Itoa(i), string(m.Data))
	}
	require.Equal(t, uint64(1200), embeddedtest.StreamMsgs(t, js, "S"))
	require.Equal(t, uint64(400), embeddedtest.SubjectMsgs(t, js, "S", "s.b"))
	b := embeddedtest.ReadStream(t, js, "S", "s.b")
	require.Len(t, b, 400)
	require.Equal(t, "s.b", b[399].Subject)
	require.Equal(t, "1197", string(b[399].Data))
	require.Empty(t, embeddedtest.ReadStream(t, js, "S", "s.none"))
}

func TestConsumerIdle(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	s, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}})
	require.NoError(t, err)
	require.ErrorIs(t, embeddedtest.ConsumerIdle(t.Context(), js, "S", "c"), jetstream.ErrConsumerNotFound)
	c, err := s.CreateConsumer(t.Context(), jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	require.NoError(t, embeddedtest.ConsumerIdle(t.Context(), js, "S", "c"))
	_, err = js.Publish(t.Context(), "s", []byte("x"))
	require.NoError(t, err)
	require.EqualError(t, embeddedtest.ConsumerIdle(t.Context(), js, "S", "c"), "consumer c on S: 1 pending, 0 awaiting ack")
	m, err := c.Next()
	require.NoError(t, err)
	require.EqualError(t, embeddedtest.ConsumerIdle(t.Context(), js, "S", "c"), "consumer c on S: 0 pending, 1 awaiting ack")
	require.NoError(t, m.DoubleAck(t.Context()))
	require.NoError(t, embeddedtest.ConsumerIdle(t.Context(), js, "S", "c"))
}

func TestCheckForPollsUntilNil(t *testing.T) {
	t.Parallel()
	calls := 0
	embeddedtest.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	require.Equal(t, 3, calls)
}

func TestTimeoutScales(t *testing.T) { // not parallel: it sets the environment
	t.Setenv("JETFLEET_TEST_SCALE", "")
	t.Setenv("CI", "")
	require.Equal(t, time.Second, embeddedtest.Timeout(time.Second))
	t.Setenv("CI", "true")
	require.Equal(t, 3*time.Second, embeddedtest.Timeout(time.Second))
	t.Setenv("JETFLEET_TEST_SCALE", "1.5")
	require.Equal(t, 1500*time.Millisecond, embeddedtest.Timeout(time.Second), "an explicit scale wins")
}

func TestFreePorts(t *testing.T) {
	t.Parallel()
	ports := embeddedtest.FreePorts(t, 5)
	seen := map[int]bool{}
	for _, p := range ports {
		require.False(t, seen[p], "port %d twice", p)
		seen[p] = true
	}
	base := embeddedtest.FreePortBlock(t, 0, 1, 2000)
	require.Positive(t, base)
}
