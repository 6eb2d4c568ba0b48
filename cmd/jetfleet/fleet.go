package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/aggregate"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func pipelineFlag() cli.Flag {
	return &cli.StringFlag{Name: "pipeline", Aliases: []string{"p"}, Usage: "pipeline file (default: the built-in shop demo, examples/shop/pipeline.yaml)", EnvVars: []string{"JETFLEET_PIPELINE"}}
}

// loadPipeline reads --pipeline, or the built-in shop demo without it.
func loadPipeline(c *cli.Context, log zerolog.Logger) (*pipeline.Spec, error) {
	path := c.String("pipeline")
	if path == "" {
		log.Info().Msg("no --pipeline given: running the built-in shop demo pipeline")
		return pipeline.Default(), nil
	}
	spec, err := pipeline.Load(path)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("pipeline: %v", err), 1)
	}
	if err := checkMarts(spec); err != nil {
		return nil, cli.Exit(fmt.Sprintf("pipeline %s: %v", path, err), 1)
	}
	return spec, nil
}

// stepNames lists the steps `jetfleet worker` runs.
var stepNames = []string{"ingest", "validate", "transform", "aggregate"}

// buildFleet builds the fleet of cfg plus the steps that live outside the
// fleet package: the DuckDB aggregator, one per dataset.
func buildFleet(c *cli.Context, cfg fleet.Config) (*fleet.Fleet, error) {
	cfg.Extra = []fleet.ExtraStep{{
		Step: subjects.StepAggregate,
		NewMemberFunc: func(ds *pipeline.Dataset, replica int) (fleet.Member, error) {
			return aggregateMember(c, cfg, ds, replica)
		},
	}}
	return fleet.Build(cfg)
}

// aggregateMember runs the aggregator of ds and the worker feeding it.
// Replicas beyond the first do nothing: DuckDB state has one writer.
func aggregateMember(c *cli.Context, cfg fleet.Config, ds *pipeline.Dataset, replica int) (fleet.Member, error) {
	spec := cfg.Spec
	var martCfgs []aggregate.Mart
	for _, m := range spec.Marts {
		if m.Dataset == ds.Name {
			martCfgs = append(martCfgs, aggregate.Mart{Name: m.Name, Dataset: m.Dataset, SQL: m.SQL, PartitionBy: m.PartitionBy, FlushRecords: m.FlushRecords, FlushInterval: m.FlushInterval})
		}
	}
	if replica > 1 {
		return fleet.Member{}, nil
	}
	agg, err := aggregate.New(aggregate.Config{
		DataDir:     c.String("data-dir"),
		Dataset:     datasetConfig(ds),
		Marts:       martCfgs,
		MemoryLimit: c.String("memory-limit"),
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

func datasetConfig(ds *pipeline.Dataset) aggregate.DatasetConfig {
	cols := make([]aggregate.Column, len(ds.Schema))
	for i, c := range ds.Schema {
		cols[i] = aggregate.Column{Name: c.Name, Type: c.Type}
	}
	return aggregate.DatasetConfig{Name: ds.Name, Key: ds.Key, Schema: cols}
}

// checkMarts compiles every mart's SQL against its dataset's schema.
func checkMarts(spec *pipeline.Spec) error {
	var datasets []aggregate.DatasetConfig
	for _, ds := range spec.Datasets {
		datasets = append(datasets, datasetConfig(ds))
	}
	var ms []aggregate.Mart
	for _, m := range spec.Marts {
		ms = append(ms, aggregate.Mart{Name: m.Name, Dataset: m.Dataset, SQL: m.SQL, PartitionBy: m.PartitionBy, FlushRecords: m.FlushRecords, FlushInterval: m.FlushInterval})
	}
	return aggregate.CheckMarts(datasets, ms)
}

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Usage: "where JetStream (dev), DuckDB state and marts live", Value: ".jetfleet", EnvVars: []string{"JETFLEET_DATA_DIR"}}
}

func memoryLimitFlag() cli.Flag {
	return &cli.StringFlag{Name: "memory-limit", Usage: "DuckDB memory limit of each aggregator", Value: "1GB"}
}
