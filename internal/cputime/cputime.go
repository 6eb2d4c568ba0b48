// Package cputime reports the CPU time a benchmark's own thread spends
// per operation: on a shared machine, wall time per operation also counts
// the time the benchmark waited for a CPU, and its CPU time does not.
// For benchmarks only.
package cputime

import (
	"runtime"
	"testing"
)

// PerOp pins the benchmark to its thread and returns a function to call
// after the loop: it reports the thread's CPU time per op as cpu-ns/op,
// and per unit (records) as cpu-ns/<unit> when perOp units are in an op.
// GC work on other threads is not counted; allocations are, in
// -benchmem's figures.
func PerOp(b *testing.B, unit string, perOp int) func() {
	runtime.LockOSThread()
	start := Thread()
	return func() {
		cpu := Thread() - start
		runtime.UnlockOSThread()
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		if unit != "" && perOp > 0 {
			per := float64(cpu.Nanoseconds()) / float64(b.N*perOp)
			b.ReportMetric(per, "cpu-ns/"+unit)
			b.ReportMetric(1e9/per, unit+"/cpu-s")
		}
	}
}
