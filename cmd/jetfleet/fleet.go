package main

import (
	"fmt"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/pipeline"
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
	return spec, nil
}

// fleetExtras is the fleet config with the steps that live outside the
// fleet package (the aggregator); commands fill in the rest.
func fleetExtras(*cli.Context) fleet.Config {
	return fleet.Config{}
}
