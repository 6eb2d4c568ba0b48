// Package ingest is the landing zone: it turns files into records on
// jf.ingest.<dataset>. Files are NDJSON, CSV with a header row, or
// fixed-width text laid out by the dataset's ingest.fixed_width columns;
// they arrive in a watched directory ([DirWatcher]) or in the jf-landing
// Object Store bucket ([ObjectWatcher]).
//
// A file is read twice, streaming, never whole: first to hash it and to
// check that it parses (a structurally broken file publishes nothing and
// goes to failed/ with a .error note), then to publish. Message ids are
// derived from the content hash and the line number (or from the dataset
// key, with ingest.id: key), so ingesting the same file again, from either
// source, stores nothing twice within the server's de-duplication window.
// Records that parse as lines but are not valid records (bad JSON in an
// NDJSON line, a number cell that is not a number) are published anyway:
// the validate step dead-letters them with the reason.
//
// This is the one ingress path of files: `jetfleet publish --file` reads
// and publishes through [Publish] too, so a file gets the same messages,
// ids and typing whether it is published or dropped into a landing
// directory. A record larger than the server takes in one message is
// skipped and counted (Result.Skipped), never fatal. [NewReader] yields
// one record per line with its line number; [Publisher] publishes records
// with the ids and chunks of the dataset's ingest settings.
//
// # Usage
//
//	r, err := ingest.NewReader(ingest.CSV, f, ingest.OptionsFor(ds))
//	for {
//		rec, err := r.Next() // io.EOF at the end; *ParseError for a broken file
//		...
//	}
package ingest
