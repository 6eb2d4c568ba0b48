package pipeline

import "github.com/jetfleet/jetfleet/examples"

// DefaultYAML is the shop demo pipeline built into the binary.
func DefaultYAML() []byte { return examples.ShopPipeline }

// Default parses the built-in shop pipeline, the one `jetfleet dev` runs
// without --pipeline. It panics if the built-in file does not parse, which
// a test rules out.
func Default() *Spec {
	s, err := Parse(examples.ShopPipelineName, examples.ShopPipeline)
	if err != nil {
		panic("built-in shop pipeline: " + err.Error())
	}
	return s
}
