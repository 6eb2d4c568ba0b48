package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

// buildFleet is the fleet `jetfleet dev` runs: validate and transform from
// workers/fleet plus one DuckDB aggregator per dataset. It mirrors
// buildFleet/aggregateMember in cmd/jetfleet/fleet.go, which is bound to
// a cli.Context and lives in package main, so the harness (and its test)
// cannot call it. Keep the two in step until that wiring moves into
// workers/fleet.
func buildFleet(cfg fleet.Config, dataDir, memoryLimit string) (*fleet.Fleet, error) {
	cfg.Extra = []fleet.ExtraStep{{
		Step: subjects.StepAggregate,
		NewMemberFunc: func(ds *pipeline.Dataset, replica int) (fleet.Member, error) {
			return aggregateMember(cfg, ds, replica, dataDir, memoryLimit)
		},
	}}
	return fleet.Build(cfg)
}

func aggregateMember(cfg fleet.Config, ds *pipeline.Dataset, replica int, dataDir, memoryLimit string) (fleet.Member, error) {
	if replica > 1 {
		return fleet.Member{}, nil // DuckDB state has one writer
	}
	agg, err := aggregate.New(aggregate.Config{
		DataDir:     dataDir,
		Dataset:     datasetConfig(ds),
		Marts:       martsOf(cfg.Spec, ds.Name),
		MemoryLimit: memoryLimit,
		Logger:      cfg.Logger.With().Str("step", subjects.StepAggregate.Name).Str("dataset", ds.Name).Logger(),
	})
	if err != nil {
		return fleet.Member{}, err
	}
	w, err := workers.New(agg.WorkerConfig(workers.Config{
		Conn: cfg.Conn, Logger: cfg.Logger, Version: cfg.Version,
		Consumer: cfg.Consumer, Streams: cfg.Streams,
	}))
	if err != nil {
		return fleet.Member{}, err
	}
	return fleet.Member{
		Name:   fmt.Sprintf("%s/%s#%d", subjects.StepAggregate.Name, ds.Name, replica),
		Worker: w,
		RunFunc: func(ctx context.Context) error {
			if err := agg.Start(ctx); err != nil {
				return err
			}
			runErr := w.Run(ctx)
			// The final flush runs after the worker has acked its last batch.
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			return errors.Join(runErr, agg.Stop(stopCtx))
		},
	}, nil
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

func datasetConfig(ds *pipeline.Dataset) aggregate.DatasetConfig {
	cols := make([]aggregate.Column, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = aggregate.Column{Name: c.Name, Type: c.Type}
	}
	return aggregate.DatasetConfig{Name: ds.Name, Key: ds.Key, Schema: cols}
}
