package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/ingest"
	"github.com/jetfleet/jetfleet/workers/transform"
	"github.com/jetfleet/jetfleet/workers/validate"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

type order struct {
	id, customer, amount, currency, country, ts, email string
}

func (o order) json() string {
	s := fmt.Sprintf(`{"order_id":%q,"customer_id":%q,"amount":%s,"currency":%q,"country":%q,"ts":%q`, o.id, o.customer, o.amount, o.currency, o.country, o.ts)
	if o.email != "" {
		s += fmt.Sprintf(`,"email":%q`, o.email)
	}
	return s + "}"
}

// fixed is the order as a line of the shop's fixed-width layout.
func (o order) fixed() string {
	return fmt.Sprintf("%-8s%-8s%10s%-4s%-3s%-26s%-40s", o.id, o.customer, o.amount, o.currency, o.country, o.ts, o.email)
}

// generated is a file of valid, messy-but-valid, duplicate and invalid
// orders; good are the records a fixed-width file can hold too.
func generated() (good []order, lines []string, invalid int) {
	currencies := []string{"USD", "EUR", "GBP", " usd ", "eur", "Gbp"}
	countries := []string{"US", "DE", "GB", "fr", " it ", "es"}
	for i := range 30 {
		o := order{
			id: fmt.Sprintf("g-%d", i), customer: fmt.Sprintf("c-%d", i%7), amount: fmt.Sprintf("%d.%02d", i*3, i%100),
			currency: currencies[i%len(currencies)], country: countries[i%len(countries)],
			ts: fmt.Sprintf("2026-10-%02dT%02d:15:00+0%d:00", 1+i%5, i%24, i%3),
		}
		if i%4 == 0 {
			o.email = fmt.Sprintf(" User%d@Example.COM ", i)
		}
		good = append(good, o)
	}
	good = append(good, good[3], good[7], good[3]) // duplicates: same order_id again
	for _, o := range good {
		lines = append(lines, o.json())
	}
	bad := []string{
		order{"b-1", "c", "-1", "USD", "US", "2026-10-01T10:00:00Z", ""}.json(),
		`{"order_id":"b-2","customer_id":"c","amount":"7","currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
		order{"b-3", "c", "7", "BTC", "US", "2026-10-01T10:00:00Z", ""}.json(),
		order{"b-4", "c", "7", "USD", "USA", "2026-10-01T10:00:00Z", ""}.json(),
		order{"b-5", "c", "7", "USD", "US", "2026-10-01T10:00:00", ""}.json(),
		`{"order_id":"b-6","amount":7,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
		order{"", "c", "7", "USD", "US", "2026-10-01T10:00:00Z", ""}.json(),
		`this line is not json`,
		`[{"order_id":"b-9"}]`,
		"{\"order_id\":\"b-10\xff\"}",
		`{"order_id":"b-11","customer_id":"c","amount":1e400,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`,
	}
	// Interleave the bad lines with the good ones.
	var all []string
	for i, l := range lines {
		all = append(all, l)
		if i < len(bad) {
			all = append(all, bad[i])
		}
	}
	return good, all, len(bad)
}

type pipelineBundle struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	spec *pipeline.Spec
	ds   *pipeline.Dataset
}

// startPipeline runs validate and transform workers for the shop orders
// on a fresh embedded server.
func startPipeline(t *testing.T) *pipelineBundle {
	t.Helper()
	nc, js := embeddedtest.JetStream(t)
	spec := examples.Shop()
	ds := spec.Dataset("orders")
	ctx := t.Context()
	require.NoError(t, transform.LoadTables(ctx, js, spec, 1))
	tables, err := transform.NewKVTables(transform.KVTablesConfig{JS: js, Tables: transform.TablesOf(ds)})
	require.NoError(t, err)
	require.NoError(t, tables.Start(ctx))
	t.Cleanup(func() { require.NoError(t, tables.Stop(context.Background())) })
	vh, err := validate.New(ds)
	require.NoError(t, err)
	th, err := transform.New(ds, tables)
	require.NoError(t, err)
	for _, s := range []struct {
		step subjects.Step
		h    workers.Handler
	}{{subjects.StepValidate, vh}, {subjects.StepTransform, th}} {
		workertest.StartWorker(t, workers.Config{
			Conn: nc, Step: s.step, Dataset: ds.Name, Logger: zerolog.New(zerolog.NewTestWriter(t)),
			NewHandlerFunc: func() (workers.Handler, error) { return s.h, nil },
		})
	}
	return &pipelineBundle{nc: nc, js: js, spec: spec, ds: ds}
}

// settle waits until every published record is accounted for downstream.
func (b *pipelineBundle) settle(t *testing.T, records int) (clean, dead []*jetstream.RawStreamMsg) {
	t.Helper()
	embeddedtest.WaitFor(t, 20*time.Second, fmt.Sprintf("%d records clean or dead-lettered", records), func() bool {
		return int(embeddedtest.StreamMsgs(t, b.js, subjects.StreamClean)+embeddedtest.StreamMsgs(t, b.js, subjects.StreamDLQ)) >= records
	})
	return embeddedtest.ReadStream(t, b.js, subjects.StreamClean), embeddedtest.ReadStream(t, b.js, subjects.StreamDLQ)
}

// uniqueClean is the clean records by order_id, as the aggregator keeps
// them, and how many were repeats.
func uniqueClean(t *testing.T, clean []*jetstream.RawStreamMsg) (map[string]string, int) {
	t.Helper()
	byKey, dups := map[string]string{}, 0
	for _, m := range clean {
		rec, err := pipeline.DecodeRecord(m.Data)
		require.NoError(t, err)
		k := rec["order_id"].(string)
		if _, seen := byKey[k]; seen {
			dups++
			continue
		}
		byKey[k] = string(m.Data)
	}
	return byKey, dups
}

func writeFile(t *testing.T, path string, lines []string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600))
}

// TestGeneratedFileReconciles: a generated file through ingest, validate
// and transform; clean + dead-lettered + duplicates = published, and
// every dead letter states its reason.
func TestGeneratedFileReconciles(t *testing.T) {
	t.Parallel()
	b := startPipeline(t)
	good, lines, invalid := generated()
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	writeFile(t, path, lines)

	res, err := ingest.LocalFile(t.Context(), b.js, b.ds, path)
	require.NoError(t, err)
	require.Equal(t, ingest.Result{Records: len(lines), Messages: len(lines)}, res)

	clean, dead := b.settle(t, len(lines))
	unique, dups := uniqueClean(t, clean)
	require.Len(t, dead, invalid)
	require.Equal(t, 3, dups)
	require.Len(t, unique, len(good)-3)
	require.Equal(t, res.Records, len(unique)+len(dead)+dups, "clean + dead-lettered + duplicates = published")
	for _, d := range dead {
		reason := d.Header.Get(subjects.HeaderReason)
		require.NotEmpty(t, reason)
		require.Regexp(t, `^(validation failed|record is not)`, reason)
	}
	require.Contains(t, unique["g-4"], `"email_hash":"`+transform.Hash("", "user4@example.com")+`"`)
	require.Contains(t, unique["g-3"], `"currency":"USD","customer_id":"c-3"`)

	// The same file again: every message is a duplicate, nothing new downstream.
	again, err := ingest.LocalFile(t.Context(), b.js, b.ds, path)
	require.NoError(t, err)
	require.Equal(t, again.Messages, again.Duplicates)
	require.Equal(t, len(lines), int(embeddedtest.StreamMsgs(t, b.js, subjects.StreamIngest)))
}

// TestDirectoryAndObjectStore: the same file dropped into the watched
// directory and uploaded to the object store gives the same result, and
// a broken file is moved to failed/ with a note.
func TestDirectoryAndObjectStore(t *testing.T) {
	t.Parallel()
	b := startPipeline(t)
	_, lines, _ := generated()
	ctx := t.Context()
	dir := t.TempDir()
	w, err := ingest.NewDirWatcher(ingest.DirWatcherConfig{JS: b.js, Dataset: b.ds, Dir: dir, Interval: 20 * time.Millisecond, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	require.NoError(t, w.Start(ctx))
	t.Cleanup(func() { require.NoError(t, w.Stop(context.Background())) })

	writeFile(t, filepath.Join(dir, ".orders.ndjson.tmp"), lines)
	require.NoError(t, os.Rename(filepath.Join(dir, ".orders.ndjson.tmp"), filepath.Join(dir, "orders.ndjson")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "broken.csv"), []byte("order_id,amount\ns-1,1\ns-2\n"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.xlsx"), []byte("x"), 0o600))

	embeddedtest.WaitFor(t, 20*time.Second, "orders.ndjson moved to done/", func() bool {
		_, err := os.Stat(filepath.Join(dir, ingest.DoneDir, "orders.ndjson"))
		return err == nil
	})
	// Waits for the notes' text, not their names: the watcher writes a
	// note in place (os.WriteFile), so it can be seen empty for a moment.
	embeddedtest.WaitFor(t, 20*time.Second, "bad files moved to failed/ with their notes", func() bool {
		fi1, err1 := os.Stat(filepath.Join(dir, ingest.FailedDir, "broken.csv.error"))
		fi2, err2 := os.Stat(filepath.Join(dir, ingest.FailedDir, "notes.xlsx.error"))
		return err1 == nil && err2 == nil && fi1.Size() > 0 && fi2.Size() > 0
	})
	note, err := os.ReadFile(filepath.Join(dir, ingest.FailedDir, "broken.csv.error"))
	require.NoError(t, err)
	require.Equal(t, "broken.csv: line 3: wrong number of fields\n", string(note))
	note, err = os.ReadFile(filepath.Join(dir, ingest.FailedDir, "notes.xlsx.error"))
	require.NoError(t, err)
	require.Contains(t, string(note), "unknown file format")
	_, err = os.Stat(filepath.Join(dir, ingest.FailedDir, "broken.csv"))
	require.NoError(t, err)

	cleanDir, deadDir := b.settle(t, len(lines))
	require.Equal(t, len(lines), int(embeddedtest.StreamMsgs(t, b.js, subjects.StreamIngest)), "the broken file published nothing")

	// Upload the same content to the object store: the same ids, so every
	// message is a duplicate and the streams do not grow.
	ow, err := ingest.NewObjectWatcher(ingest.ObjectWatcherConfig{JS: b.js, Spec: b.spec, Logger: zerolog.New(zerolog.NewTestWriter(t))})
	require.NoError(t, err)
	require.NoError(t, ow.Start(ctx))
	t.Cleanup(func() { require.NoError(t, ow.Stop(context.Background())) })
	obs, err := ingest.OpenLanding(ctx, b.js, 1)
	require.NoError(t, err)
	content, err := os.ReadFile(filepath.Join(dir, ingest.DoneDir, "orders.ndjson"))
	require.NoError(t, err)
	_, err = obs.Put(ctx, jetstream.ObjectMeta{Name: "orders/upload.ndjson"}, bytes.NewReader(content))
	require.NoError(t, err)
	_, err = obs.PutBytes(ctx, "nosuch/x.ndjson", []byte("{}\n"))
	require.NoError(t, err)
	embeddedtest.WaitFor(t, 20*time.Second, "objects renamed", func() bool {
		_, err1 := obs.GetInfo(ctx, subjects.LandingDone+"orders/upload.ndjson")
		_, err2 := obs.GetInfo(ctx, subjects.LandingFailed+"nosuch/x.ndjson")
		return err1 == nil && err2 == nil
	})
	failed, err := obs.GetInfo(ctx, subjects.LandingFailed+"nosuch/x.ndjson")
	require.NoError(t, err)
	require.Contains(t, failed.Description, `no dataset "nosuch"`)
	_, err = obs.GetInfo(ctx, "orders/upload.ndjson")
	require.ErrorIs(t, err, jetstream.ErrObjectNotFound)

	require.Equal(t, len(lines), int(embeddedtest.StreamMsgs(t, b.js, subjects.StreamIngest)), "object upload of the same file stored nothing new")
	require.Len(t, embeddedtest.ReadStream(t, b.js, subjects.StreamClean), len(cleanDir))
	require.Len(t, embeddedtest.ReadStream(t, b.js, subjects.StreamDLQ), len(deadDir))

	// A different file via the object store is ingested for real.
	_, err = obs.PutBytes(ctx, "orders/more.ndjson", []byte(order{"o-1", "c", "1", "USD", "US", "2026-10-01T10:00:00Z", ""}.json()+"\n"))
	require.NoError(t, err)
	clean, _ := b.settle(t, len(lines)+1)
	require.Len(t, clean, len(cleanDir)+1)
}

// TestFixedWidthTwin: a fixed-width file gives the same clean records as
// its NDJSON twin.
func TestFixedWidthTwin(t *testing.T) {
	t.Parallel()
	good, _, _ := generated()
	var nd, fw []string
	for _, o := range good {
		nd = append(nd, o.json())
		fw = append(fw, o.fixed())
	}
	run := func(name string, lines []string) map[string]string {
		b := startPipeline(t)
		path := filepath.Join(t.TempDir(), name)
		writeFile(t, path, lines)
		res, err := ingest.LocalFile(t.Context(), b.js, b.ds, path)
		require.NoError(t, err)
		clean, dead := b.settle(t, res.Records)
		require.Empty(t, dead)
		unique, _ := uniqueClean(t, clean)
		return unique
	}
	fromNDJSON := run("orders.ndjson", nd)
	fromFixed := run("orders.txt", fw)
	require.Len(t, fromFixed, len(good)-3)
	keys := make([]string, 0, len(fromNDJSON))
	for k := range fromNDJSON {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		require.Equal(t, fromNDJSON[k], fromFixed[k], "order %s", k)
	}
}

// TestBulkAndKeyIDs: bulk chunks carry the record count; key ids make a
// repeated order_id one message.
func TestBulkAndKeyIDs(t *testing.T) {
	t.Parallel()
	b := startPipeline(t)
	_, lines, invalid := generated()
	bulk := *b.ds
	bulk.Ingest.Bulk = 8
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	writeFile(t, path, lines)
	res, err := ingest.LocalFile(t.Context(), b.js, &bulk, path)
	require.NoError(t, err)
	require.Equal(t, len(lines), res.Records)
	require.Equal(t, (len(lines)+7)/8, res.Messages)
	var clean, dead []*jetstream.RawStreamMsg
	embeddedtest.CheckFor(t, 20*time.Second, embeddedtest.PollEvery, func() error {
		clean, dead = embeddedtest.ReadStream(t, b.js, subjects.StreamClean), embeddedtest.ReadStream(t, b.js, subjects.StreamDLQ)
		if n := recordsIn(clean) + len(dead); n < len(lines) {
			return fmt.Errorf("%d of %d records clean or dead-lettered", n, len(lines))
		}
		return nil
	})
	require.Len(t, dead, invalid)
	require.Equal(t, len(lines)-invalid, recordsIn(clean))
	// A bulk input becomes one clean chunk per key partition it touches.
	require.LessOrEqual(t, len(clean), (len(lines)+7)/8*subjects.DefaultPartitions, "the clean stream holds bulk messages too")
	require.Less(t, len(clean), len(lines)-invalid, "the clean stream holds bulk messages too")

	keyed := *b.ds
	keyed.Ingest.ID = pipeline.IDKey
	b2 := startPipeline(t)
	res, err = ingest.LocalFile(t.Context(), b2.js, &keyed, path)
	require.NoError(t, err)
	require.Equal(t, 3, res.Duplicates, "repeated order_ids are dropped at ingest")
	clean, dead = b2.settle(t, len(lines)-3)
	_, dups := uniqueClean(t, clean)
	require.Zero(t, dups)
	require.Len(t, dead, invalid)
}

func recordsIn(msgs []*jetstream.RawStreamMsg) int {
	n := 0
	for _, m := range msgs {
		recs, _ := subjects.SplitBulk(m.Header, m.Data)
		n += len(recs)
	}
	return n
}

// TestRecordsOverMaxPayloadAreSkipped: a record larger than the server
// takes in a message is skipped and counted, in a file from disk as from a
// stream, and the rest of the file is published.
func TestRecordsOverMaxPayloadAreSkipped(t *testing.T) {
	t.Parallel()
	_, js := embeddedtest.JetStream(t)
	require.NoError(t, subjects.Ensure(t.Context(), js, subjects.StreamOptions{}))
	ds := examples.Shop().Dataset("orders")
	path := filepath.Join(t.TempDir(), "orders.ndjson")
	big := `{"order_id":"big","note":"` + strings.Repeat("x", 300) + `"}`
	require.NoError(t, os.WriteFile(path, []byte(`{"order_id":"a"}`+"\n"+big+"\n"+`{"order_id":"b"}`+"\n"), 0o600))
	open := func(context.Context) (io.ReadCloser, error) { return os.Open(path) }

	var skipped []int
	pc := ingest.PublisherConfig{JS: js, Dataset: ds, MaxRecordBytes: 200, SkippedFunc: func(rec ingest.Record, size int) {
		skipped = append(skipped, rec.Line)
		v, ok := pipeline.PrefixField(rec.Data, "order_id")
		require.True(t, ok, "the start of a cut record still names it")
		require.Equal(t, "big", v.Str())
		require.Equal(t, len(big), size)
	}}
	res, err := ingest.Publish(t.Context(), ingest.Source{Name: path, Open: open}, pc, nil)
	require.NoError(t, err, "never fatal")
	require.Equal(t, ingest.Result{Records: 2, Messages: 2, Skipped: 1}, res)
	require.Equal(t, []int{2}, skipped)

	res, err = ingest.Publish(t.Context(), ingest.Source{Name: "stdin", Format: ingest.NDJSON, Open: open, Stream: true}, pc, nil)
	require.NoError(t, err)
	require.Equal(t, ingest.Result{Records: 2, Messages: 2, Skipped: 1}, res, "a stream has ids of its own: no duplicates of the file's")
}
