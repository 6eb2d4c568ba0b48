package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers"
)

// OpenFunc opens a file's content; it is called once per pass.
type OpenFunc func(ctx context.Context) (io.ReadCloser, error)

// File ingests one file of ds named name (its extension gives the format).
// The first pass hashes the content (unless digest, a SHA-256, is given)
// and checks it parses; a file that does not is rejected with an error
// matching ErrBadFile or ErrUnknownFormat before anything is published.
// The second pass publishes. A record larger than the server takes in a
// message is skipped and counted (Result.Skipped), not fatal.
func File(ctx context.Context, js jetstream.JetStream, ds *pipeline.Dataset, name string, open OpenFunc, digest []byte) (Result, error) {
	return Publish(ctx, Source{Name: name, Open: open, Digest: digest}, PublisherConfig{JS: js, Dataset: ds}, nil)
}

// Source is content to ingest.
type Source struct {
	// Name is the file's name; its extension gives the format unless
	// Format is set.
	Name   string
	Format Format
	// Open opens the content; it is called once per pass. Required.
	Open OpenFunc
	// Digest is the content's SHA-256 when known (an object's), which
	// spares the hashing.
	Digest []byte
	// Stream says the content can be read once only (standard input): it
	// is not checked before publishing, and its records get ids hashed
	// from their bytes (no content id: PublisherConfig.ContentID).
	Stream bool
}

// Publish reads src with ds's reader options (CSV cells typed by the
// schema, its fixed-width columns) and publishes its records as
// PublisherConfig says, the content id set from the content's hash.
// eachFunc, when set, sees each record before it is published, and its
// error stops the run (a strict or rate-limited command line).
func Publish(ctx context.Context, src Source, pc PublisherConfig, eachFunc func(ctx context.Context, rec Record) error) (Result, error) {
	format := src.Format
	if format == "" {
		f, err := FormatOf(src.Name)
		if err != nil {
			return Result{}, err
		}
		format = f
	}
	if pc.Dataset == nil || pc.JS == nil {
		return Result{}, fmt.Errorf("%w: publish needs JS and Dataset", workers.ErrInvalidConfig)
	}
	if pc.MaxRecordBytes <= 0 {
		pc.MaxRecordBytes = MaxRecordBytes(pc.JS.Conn())
	}
	opts := OptionsFor(pc.Dataset)
	opts.MaxLineBytes, opts.KeepLong = pc.MaxRecordBytes, true
	if !src.Stream {
		sum, err := check(ctx, format, opts, src.Open, src.Digest == nil)
		if err != nil {
			return Result{}, err
		}
		digest := src.Digest
		if digest == nil {
			digest = sum
		}
		pc.ContentID = ContentID(digest)
	}
	p, err := NewPublisher(pc)
	if err != nil {
		return Result{}, err
	}
	rc, err := src.Open(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("open %s: %w", src.Name, err)
	}
	defer rc.Close()
	r, err := NewReader(format, rc, opts)
	if err != nil {
		return Result{}, err
	}
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			res, _ := p.Close(ctx)
			return res, err
		}
		if eachFunc != nil {
			if err := eachFunc(ctx, rec); err != nil {
				res, _ := p.Close(ctx)
				return res, err
			}
		}
		if err := p.Add(ctx, rec); err != nil {
			return p.res, err
		}
	}
	return p.Close(ctx)
}

// check reads the file through its parser, hashing it when asked.
func check(ctx context.Context, format Format, opts Options, open OpenFunc, hash bool) ([]byte, error) {
	rc, err := open(ctx)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer rc.Close()
	h := sha256.New()
	var src io.Reader = rc
	if hash {
		src = io.TeeReader(rc, h)
	}
	r, err := NewReader(format, src, opts)
	if err != nil {
		return nil, err
	}
	for {
		if _, err := r.Next(); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	if hash {
		// The parser may stop before EOF; the hash covers every byte.
		if _, err := io.Copy(h, rc); err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	return h.Sum(nil), nil
}

// LocalFile ingests the file at path.
func LocalFile(ctx context.Context, js jetstream.JetStream, ds *pipeline.Dataset, path string) (Result, error) {
	return File(ctx, js, ds, path, func(context.Context) (io.ReadCloser, error) { return os.Open(path) }, nil)
}

// ParseDigest decodes an Object Store digest ("SHA-256=<base64url>").
func ParseDigest(d string) ([]byte, bool) {
	enc, ok := strings.CutPrefix(d, "SHA-256=")
	if !ok {
		return nil, false
	}
	b, err := base64.URLEncoding.DecodeString(enc)
	if err != nil || len(b) != sha256.Size {
		return nil, false
	}
	return b, true
}

// IsFileError reports whether err is about the file itself (it will fail
// the same way again), as opposed to the server or the network.
func IsFileError(err error) bool {
	return errors.Is(err, ErrBadFile) || errors.Is(err, ErrUnknownFormat)
}
