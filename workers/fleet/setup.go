package fleet

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/alert"
	"github.com/jetfleet/jetfleet/workers/transform"
)

// consumers lists the durable consumers the fleet's members bind to:
// its step workers' and every partition consumer of its aggregators.
func (f *Fleet) consumers() ([]subjects.ConsumerDef, error) {
	var defs []subjects.ConsumerDef
	for _, w := range f.Workers() {
		def, err := w.ConsumerDef()
		if err != nil {
			return nil, err
		}
		defs = append(defs, def)
	}
	for _, s := range f.sets {
		for p := range s.n {
			cfg, err := subjects.PartitionConsumer(subjects.StepAggregate, s.ds.Name, p, s.n, f.cfg.Consumer)
			if err != nil {
				return nil, err
			}
			defs = append(defs, subjects.ConsumerDef{Stream: subjects.StreamClean, Config: cfg})
		}
	}
	return defs, nil
}

// usesAlertsBucket says whether a member keeps alert state: the alert
// step's record rules or mart rules beside an aggregator.
func (f *Fleet) usesAlertsBucket() bool {
	for _, w := range f.Workers() {
		if def, err := w.ConsumerDef(); err == nil && def.Config.Metadata[subjects.MetaStep] == subjects.StepAlert.Name {
			return true
		}
	}
	for _, s := range f.sets {
		if s.rules != nil {
			return true
		}
	}
	return false
}

// Setup creates or updates, on the server, everything a fleet of cfg's
// pipeline binds to, whatever cfg.Steps says: the streams, every step's
// durable consumers, the supervisors' advisory consumer, the fleet,
// alert, lease and lookup buckets and the landing object store. It is
// what `jetfleet setup` runs as the admin user, once, so that workers can
// run bind-only. It is idempotent; the changes say what it did.
func Setup(ctx context.Context, cfg Config) ([]subjects.Change, error) {
	// Every step but ingest, whose watchers bind to the landing bucket
	// (made below) and a directory on their own machine.
	cfg.Steps = slices.DeleteFunc(StepNames(cfg.Spec), func(s string) bool { return s == subjects.StepIngest.Name })
	cfg.Datasets = nil
	cfg.Streams.BindOnly = false
	f, err := Build(cfg)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, err
	}
	o := f.cfg.Streams
	changes, err := subjects.EnsureStreams(ctx, js, o)
	if err != nil {
		return changes, err
	}
	defs, err := f.consumers()
	if err != nil {
		return changes, err
	}
	// A step run outside jetfleet (external_steps) binds to the same
	// durable as a Go worker would: setup makes it for it.
	for _, ds := range cfg.Spec.Datasets {
		for _, step := range []subjects.Step{subjects.StepValidate, subjects.StepTransform} {
			if !ds.External(step.Name) {
				continue
			}
			ccfg, err := subjects.Consumer(step, ds.Name, cfg.Consumer)
			if err != nil {
				return changes, err
			}
			defs = append(defs, subjects.ConsumerDef{Stream: subjects.StreamFor(step.Input), Config: ccfg})
		}
	}
	defs = append(defs, subjects.ConsumerDef{Stream: subjects.StreamAdvisories, Config: subjects.AdvisoriesConsumer()})
	var errs []error
	for _, def := range defs {
		c, err := subjects.EnsureConsumer(ctx, js, def)
		errs = append(errs, err)
		changes = append(changes, c)
	}
	buckets := []jetstream.KeyValueConfig{subjects.FleetKV(o), subjects.PartitionsKV(o, f.cfg.LeaseTTL)}
	if len(cfg.Spec.Alerts) > 0 {
		buckets = append(buckets, subjects.AlertsKV(o))
	}
	for _, t := range f.lookups {
		buckets = append(buckets, subjects.LookupBucketConfig(t, o.Replicas))
	}
	for _, b := range buckets {
		c, err := subjects.EnsureBucket(ctx, js, b, o)
		errs = append(errs, err)
		changes = append(changes, c)
	}
	c, err := subjects.EnsureObjectStore(ctx, js, subjects.LandingBucketConfig(o.Replicas))
	errs = append(errs, err)
	changes = append(changes, c)
	return changes, errors.Join(errs...)
}

// Check verifies, creating and changing nothing, that everything the
// fleet's members bind to exists and keeps the contract; a bind-only
// process calls it before it starts, so it refuses with every reason at
// once instead of failing member by member.
func (f *Fleet) Check(ctx context.Context) error {
	js, err := jetstream.New(f.cfg.Conn)
	if err != nil {
		return err
	}
	o := f.cfg.Streams
	o.BindOnly = true
	if err := subjects.Ensure(ctx, js, o); err != nil {
		return err // the consumers are not worth asking about
	}
	defs, err := f.consumers()
	if err != nil {
		return err
	}
	var errs []error
	for _, def := range defs {
		_, err := subjects.BindConsumer(ctx, js, def.Stream, def.Config)
		errs = append(errs, err)
	}
	var buckets []string
	if f.usesAlertsBucket() {
		buckets = append(buckets, subjects.AlertsBucket)
	}
	if f.cfg.AggregateClaim && len(f.sets) > 0 {
		buckets = append(buckets, subjects.PartitionBucket)
	}
	for _, t := range f.lookups {
		buckets = append(buckets, subjects.LookupBucket(t))
	}
	for _, b := range buckets {
		_, err := subjects.BindBucket(ctx, js, b)
		errs = append(errs, err)
	}
	if f.ingest {
		if _, err := js.ObjectStore(ctx, subjects.LandingBucket); err != nil {
			errs = append(errs, fmt.Errorf("%w: object store %s: %w (an admin creates it: jetfleet setup --pipeline FILE)", subjects.ErrNotSetUp, subjects.LandingBucket, err))
		}
	}
	return errors.Join(errs...)
}

// Shape is what of spec its server permissions depend on
// (subjects.Roles): datasets, lookup tables, alert rules, webhook targets.
func Shape(spec *pipeline.Spec, partitions int) subjects.PipelineShape {
	p := subjects.PipelineShape{Name: spec.Name, Partitions: partitions}
	for _, ds := range spec.Datasets {
		p.Datasets = append(p.Datasets, ds.Name)
		for _, t := range transform.TablesOf(ds) {
			if !slices.Contains(p.Lookups, t) {
				p.Lookups = append(p.Lookups, t)
			}
		}
	}
	for _, a := range spec.Alerts {
		p.Alerts = append(p.Alerts, subjects.AlertShape{Name: a.Name, Dataset: a.Dataset, Record: a.Kind == pipeline.AlertRecord})
	}
	for _, w := range spec.Webhooks {
		if len(alert.WebhookSubjects(spec, w.Name)) > 0 {
			p.Webhooks = append(p.Webhooks, w.Name)
		}
	}
	return p
}
