package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish records from a file or stdin to a subject",
		ArgsUsage: "SUBJECT",
		Description: `Reads NDJSON (one JSON object per line), CSV with a header row or fixed-width text and
publishes one record per message, or --bulk N records per message. A file is read as the
ingest step reads one dropped into its landing directory (same reader, same publisher):
CSV cells typed by the dataset's schema (--pipeline), and the same message ids: its
content hash and line number, or with --id-field k:<dataset>:<value>, so publishing the
same file twice, or dropping it into the landing directory too, stores every record
once (within the server's de-duplication window). Standard input, which cannot be hashed
before it is published, gets ids hashed from each record (or --id-field's).
A record larger than the server's max payload is skipped and counted, never fatal.
A malformed line is published anyway (the pipeline dead-letters it) unless --strict.

   jetfleet publish --file orders.ndjson --id-field order_id jf.ingest.orders
   cat orders.csv | jetfleet publish --format csv jf.ingest.orders
   jetfleet publish --object --file orders.csv jf.ingest.orders   # landing zone upload`,
		Flags: commonFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "input file (default stdin)"},
			&cli.StringFlag{Name: "format", Usage: "ndjson, csv or fixed_width (default: from the file extension, else ndjson)"},
			pipelineFlag(),
			&cli.IntFlag{Name: "bulk", Usage: "records per message (bulk mode); 1 is record mode (default: the dataset's ingest.bulk)"},
			&cli.StringFlag{Name: "id-field", Usage: "field whose value makes the message id (k:<dataset>:<value>)"},
			&cli.Float64Flag{Name: "rate", Usage: "records per second (0: as fast as the server acks)"},
			&cli.BoolFlag{Name: "strict", Usage: "stop at the first malformed line instead of publishing it"},
			&cli.BoolFlag{Name: "object", Usage: "upload --file whole to the jf-landing object store as <dataset>/<file name>; the ingest step parses it (NDJSON, CSV, fixed-width)"},
			&cli.IntFlag{Name: "replicas", Usage: "with --object: replicas of the jf-landing bucket if this upload creates it (3 on a cluster)", Value: 1},
			&cli.DurationFlag{Name: "retry-for", Usage: "publish a message again for up to this long while its stream has no leader (a cluster node died) or the connection is down; at most 2m, the streams' de-duplication window", Value: time.Minute},
		),
		Action: runPublish,
	}
}

const (
	// maxRetryFor is the streams' de-duplication window (subjects).
	maxRetryFor = 2 * time.Minute
	// publishAckTimeout is how long an ack is awaited before the message
	// is published again: a publish lost with a dying stream leader is
	// retried after this, not after --retry-for.
	publishAckTimeout = 5 * time.Second
)

func runPublish(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef(c, "want exactly one SUBJECT, got %d arguments", c.NArg())
	}
	subject := c.Args().First()
	if strings.ContainsAny(subject, "*> \t") || strings.HasPrefix(subject, ".") || strings.HasSuffix(subject, ".") || strings.Contains(subject, "..") {
		return usagef(c, "subject %q is not a concrete subject", subject)
	}
	if c.Bool("object") {
		return publishObject(c, subject)
	}
	path := c.String("file")
	format := ingest.Format(c.String("format"))
	if format == "" {
		format = ingest.NDJSON
		if f, err := ingest.FormatOf(path); err == nil && path != "" && path != "-" {
			format = f
		}
	}
	if format != ingest.NDJSON && format != ingest.CSV && format != ingest.FixedWidth {
		return usagef(c, "--format %q: want ndjson, csv or fixed_width", format)
	}
	retryFor := c.Duration("retry-for")
	if retryFor <= 0 || retryFor > maxRetryFor {
		return usagef(c, "--retry-for %s: want more than 0 and at most %s (a retry after the streams' de-duplication window could store a record twice)", retryFor, maxRetryFor)
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	ds, err := publishDataset(c, subject, log)
	if err != nil {
		return err
	}
	src, size, err := publishSource(path, format)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	sigCtx, stop := signalContext(log)
	defer stop()
	// The server refuses a publish or the reply inbox by an async error
	// and no answer: stop at once and say which, not after ack timeouts.
	ctx, deny := context.WithCancelCause(sigCtx)
	defer deny(nil)
	nc, err := connectOnceDenied(ctx, c, "publish", log, deny)
	if err != nil {
		return err
	}
	defer nc.Close()
	// A publish lost with a dying cluster node times out soon and is
	// published again (same message id) until --retry-for runs out.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(publishAckTimeout))
	if err != nil {
		return err
	}

	maxRecord := ingest.MaxRecordBytes(nc)
	idField := c.String("id-field")
	// The bar is for a person watching: on a pipe or a log file (not a
	// terminal) there is none, as before.
	var progress *progressbar.ProgressBar
	if size > 0 && isatty.IsTerminal(os.Stderr.Fd()) {
		src.Open = withProgress(src.Open, size, &progress)
		defer func() { stopProgress(progress) }()
	}
	pc := ingest.PublisherConfig{
		JS: js, Dataset: ds, Subject: subject, IDField: idField, Bulk: c.Int("bulk"), MaxRecordBytes: maxRecord,
		PublishOpts: []jetstream.PublishOpt{jetstream.WithStallWait(30 * time.Second)},
		RetryFor:    retryFor,
		WaitingFunc: func(w ingest.Waiting) {
			if w.Over {
				log.Info().Dur("waited", w.For).Msgf("publishing again after %s (%s)", w.For.Round(100*time.Millisecond), w.Reason)
				return
			}
			log.Warn().Err(w.Err).Dur("waited", w.For).Msgf("%s, waiting (%ds of --retry-for %s)", w.Reason, int(w.For.Seconds()), retryFor)
		},
		SkippedFunc: func(rec ingest.Record, size int) {
			fmt.Fprintf(os.Stderr, "jetfleet: %s: %d bytes exceeds the server's max payload (%d); skipped\n", recordWhere(rec, idField), size, nc.MaxPayload())
		},
	}
	strict, pace := c.Bool("strict"), newPacer(c.Float64("rate"))
	res, runErr := ingest.Publish(ctx, src, pc, func(ctx context.Context, rec ingest.Record) error {
		if strict {
			if rec.Cut || len(rec.Data) > maxRecord {
				return fmt.Errorf("%s: %d bytes exceeds the server's max payload (%d)", recordWhere(rec, idField), max(rec.Size, len(rec.Data)), nc.MaxPayload())
			}
			var f pipeline.Fields
			if f.Scan(rec.Data) != nil {
				return fmt.Errorf("line %d: not a JSON object (--strict): %.60q", rec.Line, rec.Data)
			}
		}
		return pace.wait(ctx)
	})
	stopProgress(progress)
	progress = nil // erased: the deferred stop has nothing left to do
	if cause := context.Cause(ctx); runErr != nil && cause != nil && sigCtx.Err() == nil && !errors.Is(cause, context.Canceled) {
		// Refused: nothing here is known to be stored. Publishing again
		// once the permission is fixed is safe (message ids).
		return cli.Exit(fmt.Sprintf("publish to %s: %v", subject, cause), 1)
	}
	again := ""
	if res.Republished > 0 {
		again = fmt.Sprintf(", %d published again after the stream did not answer", res.Republished)
	}
	fmt.Fprintf(c.App.Writer, "published %d records in %d messages to %s: %d duplicates (already stored), %d rejected lines%s\n",
		res.Records, res.Messages, subject, res.Duplicates, res.Skipped, again)
	if runErr != nil {
		return cli.Exit(publishError(subject, runErr).Error(), 1)
	}
	return nil
}

// publishDataset is the dataset of subject in --pipeline (the built-in
// shop pipeline without it): its ingest settings, key and schema shape
// the messages as the ingest step would. A subject of no dataset there
// gets the defaults: content ids, CSV cells as strings.
func publishDataset(c *cli.Context, subject string, log zerolog.Logger) (*pipeline.Dataset, error) {
	name := subject
	if p, err := subjects.Parse(subject); err == nil && p.Kind == subjects.KindIngest {
		name = p.Dataset
	}
	spec := examples.Shop()
	if path := c.String("pipeline"); path != "" {
		var err error
		if spec, err = pipeline.Load(path); err != nil {
			return nil, cli.Exit(err.Error(), 1)
		}
	}
	if ds := spec.Dataset(name); ds != nil {
		return ds, nil
	}
	log.Debug().Str("dataset", name).Str("pipeline", spec.Name).Msg("no such dataset in the pipeline: content ids, untyped CSV")
	return &pipeline.Dataset{Name: name, Ingest: pipeline.Ingest{ID: pipeline.IDContent, Delimiter: ','}}, nil
}

// publishSource is --file as an ingest source, or stdin as a stream.
func publishSource(path string, format ingest.Format) (ingest.Source, int64, error) {
	if path == "" || path == "-" {
		return ingest.Source{
			Name: "stdin", Format: format, Stream: true,
			Open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(os.Stdin), nil },
		}, 0, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return ingest.Source{}, 0, fmt.Errorf("input: %w", err)
	}
	if st.IsDir() {
		return ingest.Source{}, 0, fmt.Errorf("input: %s is a directory", path)
	}
	return ingest.Source{
		Name: path, Format: format,
		Open: func(context.Context) (io.ReadCloser, error) { return os.Open(path) },
	}, st.Size(), nil
}

// recordWhere names a record in a message: its line, and its id field's
// value when it has one (found even in the start of a cut line).
func recordWhere(rec ingest.Record, idField string) string {
	where := fmt.Sprintf("line %d", rec.Line)
	if idField != "" {
		if v, ok := pipeline.PrefixField(rec.Data, idField); ok {
			where += fmt.Sprintf(" (%s %.40s)", idField, pipeline.KeyString(v.Any()))
		}
	}
	return where
}

// withProgress shows a progress bar on the publishing pass of a file (the
// second open; the first only hashes it): bytes read of size, the rate
// and the time left, as wide as the terminal.
func withProgress(open ingest.OpenFunc, size int64, bar **progressbar.ProgressBar) ingest.OpenFunc {
	opens := 0
	return func(ctx context.Context) (io.ReadCloser, error) {
		rc, err := open(ctx)
		if err != nil {
			return nil, err
		}
		if opens++; opens < 2 {
			return rc, nil
		}
		*bar = progressbar.NewOptions64(size,
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription("publishing"),
			progressbar.OptionShowBytes(true), // the rate, in bytes/s
			progressbar.OptionShowCount(),     // bytes read of size
			progressbar.OptionShowTotalBytes(true),
			progressbar.OptionSetPredictTime(true), // the time left
			progressbar.OptionFullWidth(),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionUseANSICodes(true),
		)
		return struct {
			io.Reader
			io.Closer
		}{io.TeeReader(rc, barWriter{*bar}), rc}, nil
	}
}

// barWriter counts bytes read on a bar. The bar's errors (a file grown
// past the size it had, a stderr that refuses writes) never fail a read.
type barWriter struct{ bar *progressbar.ProgressBar }

func (w barWriter) Write(p []byte) (int, error) {
	_ = w.bar.Add(len(p))
	return len(p), nil
}

// stopProgress stops drawing bar and erases it, so the summary line
// stands alone; nil is no bar.
func stopProgress(bar *progressbar.ProgressBar) {
	if bar == nil {
		return
	}
	_ = bar.Exit() // later reads draw nothing
	_ = bar.Clear()
}

// pacer spaces records at a rate: the n-th waits until start + n/rate.
type pacer struct {
	interval time.Duration
	start    time.Time
	n        int
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return &pacer{}
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return nil
	}
	if p.start.IsZero() {
		p.start = time.Now()
	}
	d := time.Until(p.start.Add(time.Duration(p.n) * p.interval))
	p.n++
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return errors.New("interrupted")
	}
}

func publishError(subject string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("publish to %s: no JetStream stream stores this subject (jetfleet's streams take jf.ingest.<dataset>; is `jetfleet dev` or a worker running?)", subject)
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	return err
}

func openInput(path string) (io.ReadCloser, int64, error) {
	if path == "" || path == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("input: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("input: %w", err)
	}
	if st.IsDir() {
		f.Close()
		return nil, 0, fmt.Errorf("input: %s is a directory", path)
	}
	return f, st.Size(), nil
}

// publishObject uploads a file to the landing bucket, where the ingest
// step (`jetfleet dev`, or `jetfleet worker ingest`) picks it up.
func publishObject(c *cli.Context, subject string) error {
	p, err := subjects.Parse(subject)
	if err != nil || p.Kind != subjects.KindIngest {
		return usagef(c, "--object needs an ingest subject jf.ingest.<dataset>, got %q", subject)
	}
	path := c.String("file")
	if path == "" || path == "-" {
		return usagef(c, "--object needs --file")
	}
	f, _, err := openInput(path)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer f.Close()
	sess, err := openSession(c, "publish")
	if err != nil {
		return err
	}
	defer sess.Close()
	ctx := sess.ctx
	obs, err := ingest.OpenLanding(ctx, sess.js, c.Int("replicas"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	name := p.Dataset + "/" + filepath.Base(path)
	info, err := obs.Put(ctx, jetstream.ObjectMeta{Name: name, Description: "uploaded by jetfleet publish"}, f)
	if err != nil {
		return cli.Exit(fmt.Sprintf("upload %s: %v", name, err), 1)
	}
	_, err = fmt.Fprintf(c.App.Writer, "uploaded %s (%d bytes) to object store %s; the ingest step publishes its records to %s\n", name, info.Size, subjects.LandingBucket, subject)
	return err
}
