package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
)

// aggregateMember runs the DuckDB aggregator of ds and the worker that
// feeds it. Only replica 1 gets one: DuckDB state has one writer.
func (f *Fleet) aggregateMember(ds *pipeline.Dataset, replica int) (Member, bool, error) {
	if replica > 1 {
		return Member{}, false, nil
	}
	cfg := f.cfg
	rules, err := f.martRules(ds)
	if err != nil {
		return Member{}, false, err
	}
	acfg := aggregate.Config{
		DataDir:     cfg.DataDir,
		Dataset:     DatasetConfig(ds),
		Marts:       martsOf(cfg.Spec, ds.Name),
		MemoryLimit: cfg.MemoryLimit,
		Committed:   cfg.AggregateCommitted,
		Logger:      cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", ds.Name).Logger(),
	}
	if rules != nil {
		acfg.FlushedFunc = rules.Flushed
	}
	agg, err := aggregate.New(acfg)
	if err != nil {
		return Member{}, false, err
	}
	w, err := workers.New(agg.WorkerConfig(workers.Config{
		Conn: cfg.Conn, Logger: cfg.Logger, Version: cfg.Version,
		Consumer: cfg.Consumer, Streams: cfg.Streams,
	}))
	if err != nil {
		return Member{}, false, err
	}
	agg.SetFeeder(w.Pause, w.Resume) // a data dir refusing writes pauses intake
	return Member{
		Name:   fmt.Sprintf("%s/%s#%d", subjects.StepAggregate.Name, ds.Name, replica),
		Worker: w,
		RunFunc: func(ctx context.Context) error {
			f.declareConsumer(ctx, subjects.StepAggregate, ds.Name)
			if err := agg.Start(ctx); err != nil {
				return err
			}
			stopRules := runMartRules(ctx, rules)
			runErr := w.Run(ctx)
			defer stopRules()
			// The final flush runs after the worker has acked its last batch.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return errors.Join(runErr, agg.Stop(stopCtx))
		},
	}, true, nil
}

func martsOf(spec *pipeline.Spec, dataset string) []aggregate.Mart {
	var out []aggregate.Mart
	for _, m := range spec.Marts {
		if m.Dataset == dataset {
			out = append(out, aggregate.Mart{Name: m.Name, Dataset: m.Dataset, SQL: m.SQL, PartitionBy: m.PartitionBy, FlushRecords: m.FlushRecords, FlushInterval: m.FlushInterval})
		}
	}
	return out
}

// DatasetConfig is the aggregator's view of a pipeline dataset.
func DatasetConfig(ds *pipeline.Dataset) aggregate.DatasetConfig {
	cols := make([]aggregate.Column, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = aggregate.Column{Name: c.Name, Type: c.Type}
	}
	return aggregate.DatasetConfig{Name: ds.Name, Key: ds.Key, Schema: cols}
}

// CheckMarts compiles every mart's SQL of spec against its dataset's
// schema in DuckDB, so a bad mart fails at check time, not at a flush.
func CheckMarts(spec *pipeline.Spec) error {
	var datasets []aggregate.DatasetConfig
	var ms []aggregate.Mart
	for _, ds := range spec.Datasets {
		datasets = append(datasets, DatasetConfig(ds))
		ms = append(ms, martsOf(spec, ds.Name)...)
	}
	return aggregate.CheckMarts(datasets, ms)
}
