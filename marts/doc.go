// Package marts is the on-disk layout of a jetfleet data directory's
// analytical outputs, and the small JSON files that describe them. It does
// no SQL and links no DuckDB, so any command can read it.
//
// # Layout
//
//	<data-dir>/state/<dataset>.progress.json       what the aggregator committed and folded into the marts
//	<data-dir>/state/<dataset>/p<k>/               key partition k: journal segments, keys, partition.json
//	<data-dir>/state/<dataset>/builder/            the mart builder's checkpoint (partial aggregates)
//	<data-dir>/marts/<mart>/_manifest.json         rows, partitions, last flush, last sequence folded in
//	<data-dir>/marts/<mart>/day=2026-10-01/data.parquet   a partitioned mart (Hive style)
//	<data-dir>/marts/<mart>/data.parquet                  an unpartitioned mart
//	<data-dir>/lake/<dataset>/_manifest.json
//	<data-dir>/lake/<dataset>/_log/<owner>/<n>.json       one entry per lake flush: the files it added
//	<data-dir>/lake/<dataset>/date=2026-10-01/data-<owner>-<n>-<i>.parquet  clean records, written whole, never changed
//
// Partition columns live in the directory names, not in the files (the Hive
// convention); a manifest records their types, so readers need not guess.
//
// # Freshness
//
// The aggregator writes the progress file after every commit and a mart's
// manifest after every flush. [Pending] compares the two: an empty answer
// means every mart and lake has folded in everything its state committed.
//
//	ms, err := marts.ReadManifests(dataDir)
//	lagging, err := marts.Pending(dataDir)
package marts
