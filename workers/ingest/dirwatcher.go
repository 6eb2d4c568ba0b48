package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers"
)

// Folders a watched directory keeps processed files in.
const (
	DoneDir   = "done"
	FailedDir = "failed"
)

// DirWatcherConfig configures a [DirWatcher].
type DirWatcherConfig struct {
	// JS is the JetStream context to publish with. Required.
	JS jetstream.JetStream
	// Dataset the directory's files belong to. Required.
	Dataset *pipeline.Dataset
	// Dir is the landing directory; created if missing. Required.
	Dir string
	// Interval between scans. A file is taken once its size and
	// modification time held still for one interval, so a file being
	// copied in is not read half-written. Default 1s.
	Interval time.Duration
	// Logger gets one line per file.
	Logger zerolog.Logger
}

// DirWatcher ingests files that appear in a directory, then moves each to
// done/ or, if the file cannot be ingested, to failed/ beside a
// <name>.error note saying why. Names starting with '.' or ending in
// .tmp or .part are ignored: write there and rename into place for an
// instant pick-up. A file that fails for another reason (the server is
// away) stays and is retried on the next scan.
type DirWatcher struct {
	cfg  DirWatcherConfig
	log  zerolog.Logger
	seen map[string]fileState

	svc startstop.Service
}

type fileState struct {
	size int64
	mod  time.Time
}

// NewDirWatcher checks cfg. It does no I/O.
func NewDirWatcher(cfg DirWatcherConfig) (*DirWatcher, error) {
	if cfg.JS == nil || cfg.Dataset == nil || cfg.Dir == "" {
		return nil, fmt.Errorf("%w: dir watcher needs JS, Dataset and Dir", workers.ErrInvalidConfig)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	return &DirWatcher{
		cfg:  cfg,
		log:  cfg.Logger.With().Str("component", "dir-watcher").Str("dataset", cfg.Dataset.Name).Str("dir", cfg.Dir).Logger(),
		seen: map[string]fileState{},
	}, nil
}

// Start creates the directories and scans in the background until Stop.
func (w *DirWatcher) Start(ctx context.Context) error {
	for _, d := range []string{w.cfg.Dir, filepath.Join(w.cfg.Dir, DoneDir), filepath.Join(w.cfg.Dir, FailedDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("landing directory: %w", err)
		}
	}
	err := w.svc.Start(ctx, func(ctx context.Context, startedFunc func()) error {
		w.log.Info().Msg("watching for files")
		startedFunc()
		t := time.NewTicker(w.cfg.Interval)
		defer t.Stop()
		for {
			w.Scan(ctx, false)
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: dir watcher: %w", workers.ErrInvalidConfig, err)
	}
	return err
}

// Stop ends scanning and waits. A file being ingested is left in place
// and taken again on the next start; its content-derived ids make that
// harmless. Idempotent; safe without Start.
func (w *DirWatcher) Stop(ctx context.Context) error { return w.svc.Stop(ctx) }

// Stopped is closed once a started watcher has stopped.
func (w *DirWatcher) Stopped() <-chan struct{} { return w.svc.Stopped() }

// Scan ingests the files ready now and returns how many it moved. With
// now set, files are taken without waiting for them to hold still (for
// tests and one-shot runs on a closed directory). Not concurrent with a
// started watcher's own scans.
func (w *DirWatcher) Scan(ctx context.Context, now bool) int {
	entries, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		w.log.Warn().Err(err).Msg("scan")
		return 0
	}
	moved := 0
	present := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".part") {
			continue
		}
		present[name] = true
		info, err := e.Info()
		if err != nil {
			continue
		}
		st := fileState{size: info.Size(), mod: info.ModTime()}
		prev, ok := w.seen[name]
		w.seen[name] = st
		if !now && (!ok || prev != st) {
			continue // new or still changing: look again next scan
		}
		if ctx.Err() != nil {
			return moved
		}
		if w.ingest(ctx, name) {
			delete(w.seen, name)
			moved++
		}
	}
	for name := range w.seen {
		if !present[name] {
			delete(w.seen, name)
		}
	}
	return moved
}

// ingest handles one file and reports whether it was moved.
func (w *DirWatcher) ingest(ctx context.Context, name string) bool {
	path := filepath.Join(w.cfg.Dir, name)
	start := time.Now()
	open := func(context.Context) (io.ReadCloser, error) { return os.Open(path) }
	res, err := Publish(ctx, Source{Name: path, Open: open}, PublisherConfig{JS: w.cfg.JS, Dataset: w.cfg.Dataset, WaitingFunc: logWaiting(w.log.With().Str("file", name).Logger())}, nil)
	switch {
	case err == nil:
		if err := moveAside(path, filepath.Join(w.cfg.Dir, DoneDir)); err != nil {
			w.log.Error().Err(err).Str("file", name).Msg("ingested but cannot move to done/; it will be re-ingested (duplicates are dropped)")
			return false
		}
		w.log.Info().Str("file", name).Int("records", res.Records).Int("messages", res.Messages).Int("duplicates", res.Duplicates).Int("skipped", res.Skipped).Dur("took", time.Since(start)).Msg("file ingested")
		return true
	case IsFileError(err):
		failed := filepath.Join(w.cfg.Dir, FailedDir)
		note := fmt.Sprintf("%s: %v\n", name, err)
		if err := moveAside(path, failed); err != nil {
			w.log.Error().Err(err).Str("file", name).Msg("cannot move a bad file to failed/")
			return false
		}
		if err := writeNote(filepath.Join(failed, name+".error"), note); err != nil {
			w.log.Error().Err(err).Str("file", name).Msg("write .error note")
		}
		w.log.Warn().Str("file", name).Str("reason", strings.TrimSpace(note)).Msg("file rejected; moved to failed/")
		return true
	case errors.Is(err, context.Canceled):
		return false
	default:
		w.log.Warn().Err(err).Str("file", name).Msg("ingest failed; will retry")
		return false
	}
}

// writeNote writes a file's .error note aside and renames it into place,
// so whoever lists failed/ reads it whole or not at all.
func writeNote(path, note string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(note), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// moveAside renames path into dir, keeping an existing file of the same
// name (a re-delivered file) by adding a timestamp.
func moveAside(path, dir string) error {
	dst := filepath.Join(dir, filepath.Base(path))
	if _, err := os.Stat(dst); err == nil {
		dst = filepath.Join(dir, time.Now().UTC().Format("20060102T150405.000000000Z")+"-"+filepath.Base(path))
	}
	return os.Rename(path, dst)
}
