package subjects

import (
	"encoding/base64"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Lookup tables live in one JetStream KV bucket each, named
// jf-lookup-<table>; a row is stored under its key column's value
// (see [LookupKey]) as a JSON object.
const lookupBucketPrefix = "jf-lookup-"

// LookupBucket is the KV bucket holding lookup table table.
func LookupBucket(table string) string { return lookupBucketPrefix + table }

// LookupBucketConfig is the KV bucket definition of a lookup table. One
// history entry per key: the transform step only reads the current row.
func LookupBucketConfig(table string, replicas int) jetstream.KeyValueConfig {
	if replicas <= 0 {
		replicas = 1
	}
	return jetstream.KeyValueConfig{
		Bucket:      LookupBucket(table),
		Description: "jetfleet lookup table " + table,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}

// LookupLoadedKey is the key under which a load of a lookup table
// (`jetfleet lookup load`, or the workers writing an inline table) puts a
// marker once every row is written: a step waiting for the table starts
// when it sees the marker, not at the first row. Plain keys never hold a
// '.', encoded ones start with "b64.", so it is no row's key.
const LookupLoadedKey = "jf.loaded"

// lookupKeyB64 prefixes keys that had to be encoded; plain keys never hold
// a '.', so the two forms cannot collide.
const (
	lookupKeyB64   = "b64."
	lookupKeyEmpty = "b64.=" // a KV key may not end in '.'
)

// LookupKey is the KV key of a lookup value. Values made of letters,
// digits, '-', '_' and '=' are used as they are, so `nats kv get` reads
// naturally; anything else (dots, spaces, unicode, "") is base64url-encoded
// behind a "b64." prefix.
func LookupKey(value string) string {
	if isPlainKey(value) {
		return value
	}
	if value == "" {
		return lookupKeyEmpty
	}
	return lookupKeyB64 + base64.RawURLEncoding.EncodeToString([]byte(value))
}

// ParseLookupKey is the inverse of [LookupKey].
func ParseLookupKey(key string) (string, bool) {
	if key == lookupKeyEmpty {
		return "", true
	}
	enc, ok := strings.CutPrefix(key, lookupKeyB64)
	if !ok {
		return key, isPlainKey(key)
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), err == nil
}

func isPlainKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// LandingBucket is the Object Store bucket of file ingestion: an object
// named <dataset>/<file> is ingested into dataset, then renamed to
// done/<dataset>/<file> or failed/<dataset>/<file> (with the error in its
// description), like files in a watched directory.
const LandingBucket = "jf-landing"

// Prefixes of processed objects in [LandingBucket].
const (
	LandingDone   = "done/"
	LandingFailed = "failed/"
)

// LandingBucketConfig is the Object Store definition of [LandingBucket].
func LandingBucketConfig(replicas int) jetstream.ObjectStoreConfig {
	if replicas <= 0 {
		replicas = 1
	}
	return jetstream.ObjectStoreConfig{
		Bucket:      LandingBucket,
		Description: "jetfleet landing zone: files to ingest, as <dataset>/<file>",
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	}
}
