package examples

import (
	_ "embed"

	"github.com/jetfleet/jetfleet/pipeline"
)

// ShopPipeline is examples/shop/pipeline.yaml.
//
//go:embed shop/pipeline.yaml
var ShopPipeline []byte

// ShopPipelineName is the name errors about ShopPipeline carry.
const ShopPipelineName = "examples/shop/pipeline.yaml"

// Shop parses the built-in shop pipeline, the one `jetfleet dev` runs
// without --pipeline. It panics if the built-in file does not parse, which
// a test rules out.
func Shop() *pipeline.Spec {
	s, err := pipeline.Parse(ShopPipelineName, ShopPipeline)
	if err != nil {
		panic("built-in shop pipeline: " + err.Error())
	}
	return s
}
