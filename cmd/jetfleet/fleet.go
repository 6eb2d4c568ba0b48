package main

import (
	"fmt"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/fleet"
)

func pipelineFlag() cli.Flag {
	return &cli.StringFlag{Name: "pipeline", Aliases: []string{"p"}, Usage: "pipeline file (default: the built-in shop demo, examples/shop/pipeline.yaml)", EnvVars: []string{"JETFLEET_PIPELINE"}}
}

// startPipelineCommand is the start of a command that takes no argument
// and works on the pipeline for a number of key partitions (setup,
// security conf): its flags checked, its logger, its pipeline.
func startPipelineCommand(c *cli.Context) (zerolog.Logger, *pipeline.Spec, error) {
	if c.NArg() > 0 {
		return zerolog.Logger{}, nil, usagef(c, "unexpected argument %q", c.Args().First())
	}
	if err := checkPartitionCount(c); err != nil {
		return zerolog.Logger{}, nil, err
	}
	log, err := newLogger(c)
	if err != nil {
		return zerolog.Logger{}, nil, err
	}
	spec, err := loadPipeline(c, log)
	return log, spec, err
}

// loadPipeline reads --pipeline, or the built-in shop demo without it.
func loadPipeline(c *cli.Context, log zerolog.Logger) (*pipeline.Spec, error) {
	path := c.String("pipeline")
	if path == "" {
		log.Info().Msg("no --pipeline given: running the built-in shop demo pipeline")
		return examples.Shop(), nil
	}
	spec, err := pipeline.Load(path)
	if err != nil {
		return nil, cli.Exit(fmt.Sprintf("pipeline: %v", err), 1)
	}
	if err := fleet.CheckMarts(spec); err != nil {
		return nil, cli.Exit(fmt.Sprintf("pipeline %s: %v", path, err), 1)
	}
	if err := fleet.CheckAlerts(spec); err != nil {
		return nil, cli.Exit(fmt.Sprintf("pipeline: %v", err), 1)
	}
	return spec, nil
}

// buildFleet builds the fleet of cfg with the aggregator settings of c.
func buildFleet(c *cli.Context, cfg fleet.Config) (*fleet.Fleet, error) {
	cfg.DataDir, cfg.MemoryLimit = c.String("data-dir"), c.String("memory-limit")
	return fleet.Build(cfg)
}

func dataDirFlag() cli.Flag {
	return &cli.StringFlag{Name: "data-dir", Usage: "where JetStream (dev), DuckDB state and marts live", Value: ".jetfleet", EnvVars: []string{"JETFLEET_DATA_DIR"}}
}

func memoryLimitFlag() cli.Flag {
	return &cli.StringFlag{Name: "memory-limit", Usage: "DuckDB memory of each aggregator replica (one engine for its lake flushes and mart builds; key sets are beside it, about 45 bytes per distinct key)", Value: "1GB"}
}
