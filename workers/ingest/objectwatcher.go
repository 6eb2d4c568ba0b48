package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/internal/startstop"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
)

// ObjectWatcherConfig configures an [ObjectWatcher].
type ObjectWatcherConfig struct {
	// JS is the JetStream context. Required.
	JS jetstream.JetStream
	// Spec names the datasets objects may belong to. Required.
	Spec *pipeline.Spec
	// Replicas of the landing bucket if this watcher creates it. Default 1.
	Replicas int
	// RetryInterval is the pause before an object that failed for a
	// transient reason is tried again. Default 5s.
	RetryInterval time.Duration
	// Logger gets one line per object.
	Logger zerolog.Logger
}

// ObjectWatcher ingests objects put into the jf-landing Object Store
// bucket as <dataset>/<file> (by `jetfleet publish --object`, the nats
// CLI or any client). An ingested object is renamed to done/<dataset>/<file>;
// one that cannot be ingested to failed/<dataset>/<file> with the reason
// as its description. Objects left over from a stop are taken on start.
// Several watchers on one bucket are safe: ids derived from the content
// make a second ingest of the same object store nothing new.
type ObjectWatcher struct {
	cfg ObjectWatcherConfig
	log zerolog.Logger

	svc startstop.Service
}

// NewObjectWatcher checks cfg. It does no I/O.
func NewObjectWatcher(cfg ObjectWatcherConfig) (*ObjectWatcher, error) {
	if cfg.JS == nil || cfg.Spec == nil {
		return nil, fmt.Errorf("%w: object watcher needs JS and Spec", workers.ErrInvalidConfig)
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 5 * time.Second
	}
	return &ObjectWatcher{
		cfg: cfg,
		log: cfg.Logger.With().Str("component", "object-watcher").Str("bucket", subjects.LandingBucket).Logger(),
	}, nil
}

// OpenLanding opens the landing bucket, creating it if needed.
func OpenLanding(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.ObjectStore, error) {
	obs, err := js.ObjectStore(ctx, subjects.LandingBucket)
	if err == nil {
		return obs, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open %s: %w", subjects.LandingBucket, err)
	}
	obs, err = js.CreateObjectStore(ctx, subjects.LandingBucketConfig(replicas))
	if errors.Is(err, jetstream.ErrBucketExists) {
		obs, err = js.ObjectStore(ctx, subjects.LandingBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", subjects.LandingBucket, err)
	}
	return obs, nil
}

// Start opens the bucket and its watch, and returns; objects are ingested
// in the background until Stop.
func (w *ObjectWatcher) Start(ctx context.Context) error {
	err := w.svc.Start(ctx, func(ctx context.Context, startedFunc func()) error {
		obs, err := OpenLanding(ctx, w.cfg.JS, w.cfg.Replicas)
		if err != nil {
			return err
		}
		watch, err := obs.Watch(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", subjects.LandingBucket, err)
		}
		defer func() { _ = watch.Stop() }()
		w.log.Info().Msg("watching for objects")
		startedFunc()
		w.run(ctx, obs, watch)
		return nil
	})
	if errors.Is(err, startstop.ErrAlreadyStarted) {
		return fmt.Errorf("%w: object watcher: %w", workers.ErrInvalidConfig, err)
	}
	return err
}

func (w *ObjectWatcher) run(ctx context.Context, obs jetstream.ObjectStore, watch jetstream.ObjectWatcher) {
	var retry []string // objects that failed transiently
	timer := time.NewTimer(w.cfg.RetryInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case info, ok := <-watch.Updates():
			if !ok {
				return
			}
			if info == nil || info.Deleted || strings.HasPrefix(info.Name, subjects.LandingDone) || strings.HasPrefix(info.Name, subjects.LandingFailed) {
				continue
			}
			if !w.process(ctx, obs, info.Name) {
				retry = append(retry, info.Name)
			}
		case <-timer.C:
			var still []string
			for _, name := range retry {
				if !w.process(ctx, obs, name) {
					still = append(still, name)
				}
			}
			retry = still
			timer.Reset(w.cfg.RetryInterval)
		}
	}
}

// process ingests one object; it reports false when it should be retried.
func (w *ObjectWatcher) process(ctx context.Context, obs jetstream.ObjectStore, name string) bool {
	info, err := obs.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return true // taken by another watcher
	}
	if err != nil {
		w.log.Warn().Err(err).Str("object", name).Msg("object info; will retry")
		return ctx.Err() != nil
	}
	start := time.Now()
	res, err := w.ingest(ctx, obs, info)
	switch {
	case err == nil:
		if err := rename(ctx, obs, name, subjects.LandingDone+name, info, ""); err != nil {
			w.log.Warn().Err(err).Str("object", name).Msg("ingested but cannot rename to done/")
			return ctx.Err() != nil
		}
		w.log.Info().Str("object", name).Int("records", res.Records).Int("messages", res.Messages).Int("duplicates", res.Duplicates).Int("skipped", res.Skipped).Dur("took", time.Since(start)).Msg("object ingested")
		return true
	case IsFileError(err):
		if err := rename(ctx, obs, name, subjects.LandingFailed+name, info, err.Error()); err != nil {
			w.log.Warn().Err(err).Str("object", name).Msg("cannot rename a bad object to failed/")
			return ctx.Err() != nil
		}
		w.log.Warn().Str("object", name).Str("reason", err.Error()).Msg("object rejected; renamed to failed/")
		return true
	default:
		w.log.Warn().Err(err).Str("object", name).Msg("ingest failed; will retry")
		return ctx.Err() != nil
	}
}

func (w *ObjectWatcher) ingest(ctx context.Context, obs jetstream.ObjectStore, info *jetstream.ObjectInfo) (Result, error) {
	dataset, file, ok := strings.Cut(info.Name, "/")
	if !ok || file == "" {
		return Result{}, fmt.Errorf("%w: object %q is not named <dataset>/<file>", ErrBadFile, info.Name)
	}
	ds := w.cfg.Spec.Dataset(dataset)
	if ds == nil {
		return Result{}, fmt.Errorf("%w: no dataset %q in pipeline %s (datasets are %s)", ErrBadFile, dataset, w.cfg.Spec.Name, strings.Join(w.cfg.Spec.DatasetNames(), ", "))
	}
	digest, _ := ParseDigest(info.Digest)
	open := func(ctx context.Context) (io.ReadCloser, error) { return obs.Get(ctx, info.Name) }
	pc := PublisherConfig{JS: w.cfg.JS, Dataset: ds, WaitingFunc: logWaiting(w.log.With().Str("object", info.Name).Logger())}
	return Publish(ctx, Source{Name: file, Open: open, Digest: digest}, pc, nil)
}

// rename moves an object to its done/ or failed/ name, replacing an older
// object there (the same file uploaded again).
func rename(ctx context.Context, obs jetstream.ObjectStore, from, to string, info *jetstream.ObjectInfo, reason string) error {
	meta := info.ObjectMeta
	meta.Name = to
	if reason != "" {
		meta.Description = reason
	}
	err := obs.UpdateMeta(ctx, from, meta)
	if errors.Is(err, jetstream.ErrObjectAlreadyExists) {
		if err := obs.Delete(ctx, to); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
		err = obs.UpdateMeta(ctx, from, meta)
	}
	return err
}

// Stop ends the watch and waits. An object being ingested is abandoned
// and taken again on the next start; its content-derived ids make that
// harmless. Idempotent; safe without Start.
func (w *ObjectWatcher) Stop(ctx context.Context) error { return w.svc.Stop(ctx) }

// Stopped is closed once a started watcher has stopped.
func (w *ObjectWatcher) Stopped() <-chan struct{} { return w.svc.Stopped() }
