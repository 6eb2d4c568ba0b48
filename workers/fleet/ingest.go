package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

// service is a component with the Start/Stop/Stopped lifecycle.
type service interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Stopped() <-chan struct{}
}

// serviceMember runs a service until ctx is cancelled, as a tree child.
func serviceMember(name string, svc service) Member {
	return Member{Name: name, RunFunc: func(ctx context.Context) error {
		if err := svc.Start(ctx); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
		case <-svc.Stopped():
			return fmt.Errorf("%s stopped on its own", name)
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return svc.Stop(stopCtx)
	}}
}

// ingestMembers are the landing-zone watchers: one per dataset with a
// watched directory, and one for the object store landing bucket.
func (f *Fleet) ingestMembers(datasets []*pipeline.Dataset) error {
	// A publish lost with a dying stream leader times out and is published
	// again (ingest.PublisherConfig.RetryFor) instead of hanging.
	js, err := jetstream.New(f.cfg.Conn, jetstream.WithPublishAsyncTimeout(10*time.Second))
	if err != nil {
		return err
	}
	for _, ds := range datasets {
		if ds.Ingest.Watch == "" {
			continue
		}
		w, err := ingest.NewDirWatcher(ingest.DirWatcherConfig{
			JS: js, Dataset: ds, Dir: f.cfg.Spec.Path(ds.Ingest.Watch),
			Logger: f.cfg.Logger.With().Str("step", "ingest").Str("dataset", ds.Name).Logger(),
		})
		if err != nil {
			return err
		}
		f.Members = append(f.Members, serviceMember("ingest/"+ds.Name+"#dir", w))
	}
	ow, err := ingest.NewObjectWatcher(ingest.ObjectWatcherConfig{
		JS: js, Spec: f.cfg.Spec, Replicas: f.cfg.Streams.Replicas,
		Logger: f.cfg.Logger.With().Str("step", "ingest").Str("dataset", "*").Logger(),
	})
	if err != nil {
		return err
	}
	f.Members = append(f.Members, serviceMember("ingest/landing#objects", ow))
	return nil
}
