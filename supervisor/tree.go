package supervisor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/backoff"
	"github.com/jetfleet/jetfleet/subjects"
)

// ErrEscalated marks a child that crashed more often than its restart
// intensity allows; the tree stops restarting it and reports it failed.
var ErrEscalated = errors.New("restart intensity exceeded")

// RunFunc is the body of a supervised child: it runs until ctx is
// cancelled (then returns nil) or until it fails (then returns the error,
// and the tree restarts it). A panic counts as a failure.
type RunFunc func(ctx context.Context) error

// TreeConfig configures a [Tree].
type TreeConfig struct {
	Logger zerolog.Logger
	// BackoffMin and BackoffMax bound the pause before a restart, doubled
	// per consecutive failure. Default 200ms and 10s.
	BackoffMin, BackoffMax time.Duration
	// MaxRestarts within Window escalate: the child is stopped for good and
	// marked failed. Default 5 in 1 minute.
	MaxRestarts int
	Window      time.Duration
}

func (c *TreeConfig) setDefaults() {
	if c.BackoffMin <= 0 {
		c.BackoffMin = 200 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 10 * time.Second
	}
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
}

// ChildState is a child's state as the tree sees it.
type ChildState struct {
	Name     string    `json:"name"`
	State    string    `json:"state"` // running, restarting, failed, stopped
	Restarts int       `json:"restarts"`
	LastErr  string    `json:"last_error,omitempty"`
	Since    time.Time `json:"since"`
}

// Tree runs children in one process and restarts those that fail, with
// exponential backoff and a restart intensity cap (one-for-one, as in an
// OTP supervisor). Its methods are safe for concurrent use.
type Tree struct {
	cfg      TreeConfig
	mu       sync.Mutex
	children []*child
}

type child struct {
	name  string
	run   RunFunc
	state ChildState
}

// NewTree builds an empty tree.
func NewTree(cfg TreeConfig) *Tree {
	cfg.setDefaults()
	return &Tree{cfg: cfg}
}

// Add registers a child; call before Run.
func (t *Tree) Add(name string, run RunFunc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.children = append(t.children, &child{name: name, run: run, state: ChildState{Name: name, State: "starting", Since: time.Now()}})
}

// States returns a snapshot of every child's state.
func (t *Tree) States() []ChildState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]ChildState, len(t.children))
	for i, c := range t.children {
		out[i] = c.state
	}
	return out
}

func (t *Tree) set(c *child, state string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.state.State = state
	c.state.Since = time.Now()
	if err != nil {
		c.state.LastErr = err.Error()
	}
}

// Run runs every child until ctx is cancelled and all have returned. A
// child that escalates is left failed; the others go on. Run returns the
// escalation errors joined, nil if none.
func (t *Tree) Run(ctx context.Context) error {
	t.mu.Lock()
	children := append([]*child(nil), t.children...)
	t.mu.Unlock()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.supervise(ctx, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (t *Tree) supervise(ctx context.Context, c *child) error {
	log := t.cfg.Logger.With().Str("child", c.name).Logger()
	crashes := backoff.Window{Max: t.cfg.MaxRestarts, Period: t.cfg.Window}
	for {
		t.set(c, "running", nil)
		err := runSafely(ctx, c.run)
		if ctx.Err() != nil {
			t.set(c, "stopped", nil)
			return nil
		}
		if err == nil {
			err = errors.New("returned before shutdown")
		}
		allowed := crashes.Add(time.Now())
		t.mu.Lock()
		c.state.Restarts++
		t.mu.Unlock()
		if errors.Is(err, subjects.ErrServerTooOld) {
			// No restart changes the server's version: give up at once,
			// with the one message that says what to do.
			err = fmt.Errorf("%s: %w", c.name, err)
			t.set(c, "failed", err)
			log.Error().Err(err).Msg("giving up on child")
			return err
		}
		if !allowed {
			err = fmt.Errorf("%s: %w (%d failures within %s), last: %w", c.name, ErrEscalated, crashes.Recent(), t.cfg.Window, err)
			t.set(c, "failed", err)
			log.Error().Err(err).Msg("giving up on child")
			return err
		}
		delay := backoff.Delay(t.cfg.BackoffMin, t.cfg.BackoffMax, crashes.Recent())
		t.set(c, "restarting", err)
		log.Warn().Err(err).Dur("restart_in", delay).Int("failures", crashes.Recent()).Msg("child failed; restarting")
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.set(c, "stopped", nil)
			return nil
		case <-timer.C:
		}
	}
}

func runSafely(ctx context.Context, run RunFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	return run(ctx)
}
