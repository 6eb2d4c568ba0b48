package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"

	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

func publishCommand() *cli.Command {
	return &cli.Command{
		Name:      "publish",
		Usage:     "publish records from a file or stdin to a subject",
		ArgsUsage: "SUBJECT",
		Description: `Reads NDJSON (one JSON object per line) or CSV with a header row and publishes one
record per message, or --bulk N records per message. Each message gets a Nats-Msg-Id:
the --id-field value, else a hash of the record, so publishing the same file twice
stores every record once (within the server's de-duplication window).
A malformed line is published anyway (the pipeline dead-letters it) unless --strict.

   jetfleet publish --file orders.ndjson --id-field order_id jf.ingest.orders
   cat orders.csv | jetfleet publish --format csv jf.ingest.orders
   jetfleet publish --object --file orders.csv jf.ingest.orders   # landing zone upload`,
		Flags: commonFlags(
			&cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "input file (default stdin)"},
			&cli.StringFlag{Name: "format", Usage: "ndjson or csv (default: from the file extension, else ndjson)"},
			&cli.IntFlag{Name: "bulk", Usage: "records per message (bulk mode); 0 or 1 is record mode"},
			&cli.StringFlag{Name: "id-field", Usage: "field whose value becomes the message id"},
			&cli.Float64Flag{Name: "rate", Usage: "records per second (0: as fast as the server acks)"},
			&cli.BoolFlag{Name: "strict", Usage: "stop at the first malformed line instead of publishing it"},
			&cli.BoolFlag{Name: "object", Usage: "upload --file whole to the jf-landing object store as <dataset>/<file name>; the ingest step parses it (NDJSON, CSV, fixed-width)"},
			&cli.IntFlag{Name: "replicas", Usage: "with --object: replicas of the jf-landing bucket if this upload creates it (3 on a cluster)", Value: 1},
		),
		Action: runPublish,
	}
}

type publishStats struct {
	mu                            sync.Mutex
	records, messages, duplicates int
	rejected                      int
	err                           error
}

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
	format := c.String("format")
	in, size, err := openInput(c.String("file"))
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	defer in.Close()
	if format == "" {
		format = "ndjson"
		if strings.HasSuffix(strings.ToLower(c.String("file")), ".csv") {
			format = "csv"
		}
	}
	if format != "ndjson" && format != "csv" {
		return usagef(c, "--format %q: want ndjson or csv", format)
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(log)
	defer stop()
	nc, err := connectOnce(ctx, c, "publish", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	// A publish lost with a dying cluster node fails after the timeout
	// instead of hanging; re-running the command is safe (message ids).
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1024), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return err
	}

	counter := &countingReader{r: in}
	var next func() ([]byte, int, error)
	if format == "csv" {
		next, err = csvRecords(counter)
		if err != nil {
			return cli.Exit(fmt.Sprintf("csv header: %v", err), 1)
		}
	} else {
		next = ndjsonRecords(counter)
	}

	p := &publisher{
		js: js, subject: subject, idField: c.String("id-field"), bulk: c.Int("bulk"),
		strict: c.Bool("strict"), maxPayload: int(nc.MaxPayload()), stats: &publishStats{},
		acks: make(chan jetstream.PubAckFuture, 4096),
	}
	if c.Float64("rate") > 0 {
		p.interval = time.Duration(float64(time.Second) / c.Float64("rate"))
	}
	ackDone := make(chan struct{})
	go func() {
		defer close(ackDone)
		p.collect()
	}()
	var progress *progressBar
	if size > 0 && isatty.IsTerminal(os.Stderr.Fd()) {
		progress = newProgressBar(size, counter)
		defer progress.stop()
	}
	runErr := p.run(ctx, next)
	close(p.acks)
	<-ackDone
	if progress != nil {
		progress.stop()
	}
	s := p.stats
	fmt.Fprintf(c.App.Writer, "published %d records in %d messages to %s: %d duplicates (already stored), %d rejected lines\n",
		s.records, s.messages, subject, s.duplicates, s.rejected)
	if runErr != nil {
		return cli.Exit(runErr.Error(), 1)
	}
	if s.err != nil {
		return cli.Exit(s.err.Error(), 1)
	}
	return nil
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

type publisher struct {
	js         jetstream.JetStream
	subject    string
	idField    string
	bulk       int
	strict     bool
	maxPayload int
	interval   time.Duration
	stats      *publishStats
	acks       chan jetstream.PubAckFuture

	chunk    [][]byte
	chunkIDs []string
}

// run reads records and publishes them; it returns the first error that
// stops the run (strict mode, read error, a failed publish).
func (p *publisher) run(ctx context.Context, next func() ([]byte, int, error)) error {
	start := time.Now()
	for n := 0; ; n++ {
		if ctx.Err() != nil {
			return errors.New("interrupted")
		}
		if err := p.failed(); err != nil {
			return err
		}
		rec, line, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if p.strict && !isJSONObject(rec) {
			return fmt.Errorf("line %d: not a JSON object (--strict): %.60q", line, rec)
		}
		if len(rec) > p.maxPayload-1024 {
			p.stats.mu.Lock()
			p.stats.rejected++
			p.stats.mu.Unlock()
			where := fmt.Sprintf("line %d", line)
			if p.idField != "" {
				where += fmt.Sprintf(" (%s %.40s)", p.idField, recordID(rec, p.idField))
			}
			if p.strict {
				return fmt.Errorf("%s: %d bytes exceeds the server's max payload (%d)", where, len(rec), p.maxPayload)
			}
			fmt.Fprintf(os.Stderr, "jetfleet: %s: %d bytes exceeds the server's max payload (%d); skipped\n", where, len(rec), p.maxPayload)
			continue
		}
		if p.interval > 0 {
			if d := time.Until(start.Add(time.Duration(n) * p.interval)); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return errors.New("interrupted")
				}
			}
		}
		id := recordID(rec, p.idField)
		if p.bulk <= 1 {
			if err := p.send(rec, id, 1); err != nil {
				return err
			}
			continue
		}
		size := 0
		for _, r := range p.chunk {
			size += len(r) + 1
		}
		if len(p.chunk) > 0 && size+len(rec) > p.maxPayload-1024 {
			if err := p.flush(); err != nil {
				return err
			}
		}
		p.chunk = append(p.chunk, append([]byte(nil), rec...))
		p.chunkIDs = append(p.chunkIDs, id)
		if len(p.chunk) >= p.bulk {
			if err := p.flush(); err != nil {
				return err
			}
		}
	}
	return p.flush()
}

func (p *publisher) failed() error {
	p.stats.mu.Lock()
	defer p.stats.mu.Unlock()
	return p.stats.err
}

func (p *publisher) flush() error {
	if len(p.chunk) == 0 {
		return nil
	}
	body := strings.Join(func() []string {
		s := make([]string, len(p.chunk))
		for i, r := range p.chunk {
			s[i] = string(r)
		}
		return s
	}(), "\n")
	id := subjects.HashID(strings.Join(p.chunkIDs, "\x00"))
	err := p.send([]byte(body), id, len(p.chunk))
	p.chunk, p.chunkIDs = p.chunk[:0], p.chunkIDs[:0]
	return err
}

func (p *publisher) send(data []byte, id string, records int) error {
	m := nats.NewMsg(p.subject)
	m.Data = data
	m.Header.Set(subjects.HeaderMsgID, id)
	if records > 1 || p.bulk > 1 {
		m.Header.Set(subjects.HeaderRecords, strconv.Itoa(records))
	}
	// A stream between leaders (a cluster node died) answers "no
	// responders" for a few seconds: keep trying for about 15s.
	f, err := p.js.PublishMsgAsync(m, jetstream.WithStallWait(30*time.Second), jetstream.WithRetryAttempts(60), jetstream.WithRetryWait(250*time.Millisecond))
	if err != nil {
		return publishError(p.subject, err)
	}
	p.acks <- f
	p.stats.mu.Lock()
	p.stats.records += records
	p.stats.messages++
	p.stats.mu.Unlock()
	return nil
}

// collect waits for acks in order and tallies duplicates and failures.
func (p *publisher) collect() {
	for f := range p.acks {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				p.stats.mu.Lock()
				p.stats.duplicates++
				p.stats.mu.Unlock()
			}
		case err := <-f.Err():
			p.stats.mu.Lock()
			if p.stats.err == nil {
				p.stats.err = publishError(p.subject, err)
			}
			p.stats.mu.Unlock()
		}
	}
}

func publishError(subject string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("publish to %s: no JetStream stream stores this subject (jetfleet's streams take jf.ingest.<dataset>; is `jetfleet dev` or a worker running?)", subject)
	}
	return fmt.Errorf("publish to %s: %w", subject, err)
}

// recordID is the message id of one record: the id field's value when the
// record has it, else a hash of its bytes.
func recordID(rec []byte, field string) string {
	if field != "" {
		var obj map[string]json.RawMessage
		if json.Unmarshal(rec, &obj) == nil {
			if raw, ok := obj[field]; ok {
				var s string
				if json.Unmarshal(raw, &s) == nil && s != "" {
					return s
				}
				if raw := strings.TrimSpace(string(raw)); raw != "" && raw != "null" && raw[0] != '{' && raw[0] != '[' && raw[0] != '"' {
					return raw
				}
			}
		}
	}
	return subjects.HashID(string(rec))
}

// publishID is recordID for callers that hold a record already encoded.
func publishID(rec []byte, field string) string { return recordID(rec, field) }

func isJSONObject(b []byte) bool {
	var obj map[string]json.RawMessage
	return json.Unmarshal(b, &obj) == nil
}

// ndjsonRecords yields non-empty lines of r without a line length limit.
func ndjsonRecords(r io.Reader) func() ([]byte, int, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	line := 0
	return func() ([]byte, int, error) {
		for {
			b, err := br.ReadBytes('\n')
			if len(b) == 0 && err != nil {
				return nil, line, err
			}
			line++
			b = []byte(strings.TrimRight(string(b), "\r\n"))
			if strings.TrimSpace(string(b)) == "" {
				if err != nil {
					return nil, line, err
				}
				continue
			}
			return b, line, nil
		}
	}
}

// csvRecords yields each CSV row as a JSON object keyed by the header.
// Numbers and true/false become JSON numbers and booleans; empty cells null.
func csvRecords(r io.Reader) (func() ([]byte, int, error), error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, err
	}
	header = append([]string(nil), header...)
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	return func() ([]byte, int, error) {
		row, err := cr.Read()
		line, _ := cr.FieldPos(0)
		if err != nil {
			return nil, line, err
		}
		obj := make(map[string]any, len(header))
		for i, h := range header {
			if i < len(row) {
				obj[h] = csvValue(row[i])
			}
		}
		b, err := json.Marshal(obj)
		return b, line, err
	}, nil
}

func csvValue(s string) any {
	switch {
	case s == "":
		return nil
	case s == "true" || s == "false":
		return s == "true"
	}
	// Leading zeros are identifiers (zip codes), not numbers.
	if (len(s) > 1 && s[0] == '0' && s[1] != '.') || strings.HasPrefix(s, "+") {
		return s
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil && !strings.ContainsAny(s, "xXpPnN_") {
		return json.Number(s)
	}
	return s
}

type countingReader struct {
	r io.Reader
	n int64
	sync.Mutex
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.Lock()
	c.n += int64(n)
	c.Unlock()
	return n, err
}

func (c *countingReader) count() int64 {
	c.Lock()
	defer c.Unlock()
	return c.n
}

type progressBar struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newProgressBar(total int64, r *countingReader) *progressBar {
	p := &progressBar{done: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case <-t.C:
				n := r.count()
				pct := float64(n) * 100 / float64(total)
				bar := strings.Repeat("=", int(pct/5)) + strings.Repeat(" ", 20-int(pct/5))
				fmt.Fprintf(os.Stderr, "\r[%s] %5.1f%% %d/%d bytes", bar, pct, n, total)
			}
		}
	}()
	return p
}

func (p *progressBar) stop() {
	p.once.Do(func() { close(p.done) })
	p.wg.Wait()
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
