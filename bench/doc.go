// Package bench holds the synthetic data generator used by `jetfleet dev
// --demo`, the benchmark harness and the end-to-end tests: shop orders with
// a configurable share of invalid and duplicate records, deterministic for
// a seed so every run can verify its own output.
package bench
