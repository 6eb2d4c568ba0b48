// Package examples ships the example pipelines inside the binary: the shop
// demo is what `jetfleet dev` runs when no pipeline file is given.
package examples
