package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publisher async-publishes the run's messages on a connection of its
// own, as a separate client would, counting what the server acked.
type publisher struct {
	js         jetstream.JetStream
	nc         *nats.Conn
	dups       atomic.Int64
	failed     atomic.Int64
	firstErr   atomic.Value
	records    atomic.Int64 // records handed to the client so far
	messages   atomic.Int64
	onSentFunc func(index int64, at time.Time)
	elapsed    time.Duration
	duplicates int64
}

func newPublisher(connectFunc func(string) (*nats.Conn, error), onSentFunc func(int64, time.Time)) (*publisher, error) {
	nc, err := connectFunc("jetfleet-bench-publisher")
	if err != nil {
		return nil, err
	}
	p := &publisher{nc: nc, onSentFunc: onSentFunc}
	p.js, err = jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, _ *nats.Msg, ack *jetstream.PubAck) {
			if ack.Duplicate {
				p.dups.Add(1)
			}
		}),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			p.failed.Add(1)
			p.firstErr.CompareAndSwap(nil, err)
		}),
	)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return p, nil
}

func (p *publisher) close() { p.nc.Close() }

func (p *publisher) send(m *nats.Msg, records int, index int64, at time.Time) error {
	if p.onSentFunc != nil {
		p.onSentFunc(index, at)
	}
	// A full window blocks rather than fails: backpressure, not loss.
	if _, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(time.Minute)); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	p.records.Add(int64(records))
	p.messages.Add(1)
	return nil
}

// all publishes msgs as fast as the server takes them (closed loop).
func (p *publisher) all(ctx context.Context, msgs []*nats.Msg, recordsFunc func(*nats.Msg) int) error {
	start := time.Now()
	for i, m := range msgs {
		if err := p.send(m, recordsFunc(m), int64(i), time.Now()); err != nil {
			return err
		}
	}
	return p.finish(ctx, start)
}

// stream publishes what src makes until events records are out or
// duration has passed (whichever is set), at rate records/s when rate > 0
// (open loop: each message has a scheduled time and is sent then, or at
// once when the publisher is behind), else as fast as it can.
func (p *publisher) stream(ctx context.Context, src *source, events int64, duration time.Duration, rate float64) error {
	start := time.Now()
	var deadline time.Time
	if duration > 0 {
		deadline = start.Add(duration)
	}
	// One timer for the run, and a wake-up at most every openLoopTick: at
	// thousands of records/s a wake-up per message costs the machine more
	// than the records. Latency still counts from each message's own
	// scheduled time, so waking late can only make it look worse.
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var scheduled time.Duration // of the next message
	for {
		if events > 0 && src.records >= events {
			break
		}
		at := time.Now()
		if rate > 0 {
			at = start.Add(scheduled)
			if d := time.Until(at); d > 0 {
				timer.Reset(max(d, openLoopTick))
				select {
				case <-timer.C:
				case <-ctx.Done():
					return context.Cause(ctx)
				}
			}
		}
		if !deadline.IsZero() && !at.Before(deadline) {
			break
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		limit := int64(1 << 62)
		if events > 0 {
			limit = events - src.records
		}
		m, n, index := src.next(limit)
		if err := p.send(m, n, index, at); err != nil {
			return err
		}
		if rate > 0 {
			scheduled += time.Duration(float64(n) / rate * float64(time.Second))
		}
	}
	return p.finish(ctx, start)
}

// openLoopTick is the shortest sleep of an open-loop publisher.
const openLoopTick = time.Millisecond

// finish waits until the server acked everything published.
func (p *publisher) finish(ctx context.Context, start time.Time) error {
	select {
	case <-p.js.PublishAsyncComplete():
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	p.elapsed = time.Since(start)
	p.duplicates = p.dups.Load()
	if n := p.failed.Load(); n > 0 {
		return fmt.Errorf("%d publish(es) failed, first: %v", n, p.firstErr.Load())
	}
	return nil
}
