// Package aggregate is the aggregate step: it folds a dataset's clean
// records into a DuckDB state and keeps Parquet data marts (and a Parquet
// lake of the records) fresh from it. It holds the cgo DuckDB code; the
// on-disk layout and manifests are in package marts.
//
// # Exactly once
//
// A batch of records is appended to a staging table and moved into the
// state in one transaction that drops keys seen before (the dataset's
// Key, however long ago) and advances a batch counter; the batch handler
// returns, and the runtime acks, only after that commit. A redelivered
// record is a duplicate key and changes nothing.
//
// A flush recomputes, from one read snapshot, only the mart partitions
// touched by records committed since the output's last flush (late
// records update their old partition), writes each partition aside,
// fsyncs and renames it into place, and only then records the flush in
// the state and rewrites the manifest. A crash anywhere leaves the state
// naming an older flush, so the next start recomputes the same partitions:
// marts always equal one batch query over the de-duplicated records.
//
// # Lifecycle
//
// An [Aggregator] owns the state file (state/<dataset>.duckdb); its
// workers' batch handlers share it. Start it before its worker, stop it
// after: Stop flushes what is pending.
//
//	agg, err := aggregate.New(aggregate.Config{DataDir: dir, Dataset: ds, Marts: marts})
//	err = agg.Start(ctx)
//	w, err := workers.New(agg.WorkerConfig(workers.Config{Conn: nc, Logger: log}))
//	err = w.Run(ctx)       // until ctx is cancelled
//	err = agg.Stop(stopCtx) // final flush, close
//
// Flushes run in the background every Mart.FlushRecords records or
// Mart.FlushInterval after the first unflushed record, whichever is first.
//
// # Partitioned datasets
//
// With Config.Partition an aggregator owns one key partition and writes
// only its lake files; a [MartBuilder] keeps the marts from the lake. Its
// state (state/<dataset>.marts.duckdb) is an aggregator's fed with lake
// files, so a build reads only new files and its flushes rewrite only the
// mart partitions they touch (docs/scale-out.md).
package aggregate
