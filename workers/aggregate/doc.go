// Package aggregate is the aggregate step: it de-duplicates a dataset's
// clean records on the dataset's key, keeps them as a Parquet lake, and
// keeps the dataset's marts (DuckDB SQL over the dataset) as Parquet files
// from the lake. It holds the cgo DuckDB code; the on-disk layout and
// manifests are in package marts.
//
// # Parts
//
// An [Engine] is one in-memory DuckDB per aggregator process. An [Intake]
// owns key partitions of the clean stage: per partition a key set (128-bit
// key hashes with the stream position that committed each) and a journal
// of the records committed and not yet in the lake. A [MartBuilder]
// follows the lake's log and keeps the marts. The engine holds nothing a
// restart needs: the journals, key files, lake and the builder's
// checkpoint do.
//
// # Exactly once
//
// A batch's records are decoded once into canonical JSON lines; records
// whose key was committed before (by another message) are duplicates, and
// the same message again (redelivered) changes nothing. The new lines are
// written to the partition's journal and synced before the batch handler
// returns, and only then does the runtime ack. In the background the intake
// flushes every partition's journal to the lake in one DuckDB pass: a file
// per event date, renamed into place, then an entry in the lake's log that
// commits the flush; a crash at any point is resolved when the partition
// opens again (the entry is there, or the files are removed and the
// journal flushed again). The builder folds each committed flush into the
// marts once, and checkpoints what it folded.
//
// # Marts
//
// A mart whose SQL is a decomposable aggregation (count, sum, avg, min,
// max, ... grouped by expressions: incremental.go) keeps partial
// aggregates per group; a flush's rows are aggregated alone and merged in,
// so its cost follows the new records, not the lake. Any other mart
// recomputes, from the whole lake, the partitions the new rows fall in.
// Only touched partitions are written, each replaced atomically.
//
// # Lifecycle
//
//	eng, err := aggregate.OpenEngine(aggregate.EngineConfig{TempDir: tmp})
//	b, err := aggregate.NewMartBuilder(aggregate.MartBuilderConfig{Engine: eng, DataDir: dir, Dataset: ds, Marts: ms})
//	in, err := aggregate.NewIntake(aggregate.IntakeConfig{Engine: eng, DataDir: dir, Dataset: ds, Builder: b})
//	err = b.Start(ctx)
//	err = in.Start(ctx)
//	err = in.OpenPartition(ctx, p)                            // for each partition owned
//	w, err := workers.New(in.WorkerConfig(workers.Config{Conn: nc}, p, n))
//	...
//	err = w.Stop(ctx); err = in.Stop(ctx); err = b.Stop(ctx); err = eng.Close()
package aggregate
