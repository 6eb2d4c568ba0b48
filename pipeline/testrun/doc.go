// Package testrun runs pipeline test files (`jetfleet pipeline test`):
// cases of input records and the clean records, dead letters, mart rows
// and alerts they must give.
//
// Each case runs the real fleet of its pipeline, in this process, on an
// embedded NATS server and a data dir in a temp dir of its own: inputs are
// published through the ingest reader first, the fleet runs until
// [supervisor.WaitIdle] says every record is accounted for and every mart
// written (and the marts' alert rules have published), then stops, and
// the outputs are read back from the streams and, through DuckDB, the
// mart files. So a test means what production does; docs/pipeline.md
// describes the file.
//
// # Usage
//
//	files, _ := testrun.Find("examples/")
//	r := testrun.New(testrun.Config{Logger: log})
//	for _, path := range files {
//		f, err := testrun.Load(path)
//		...
//		results := r.RunFile(ctx, f, nil)
//	}
package testrun
