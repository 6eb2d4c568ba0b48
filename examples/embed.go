package examples

import _ "embed"

// ShopPipeline is examples/shop/pipeline.yaml.
//
//go:embed shop/pipeline.yaml
var ShopPipeline []byte

// ShopPipelineName is the name errors about ShopPipeline carry.
const ShopPipelineName = "examples/shop/pipeline.yaml"
