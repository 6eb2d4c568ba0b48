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
)

// OpenFunc opens a file's content; it is called once per pass.
type OpenFunc func(ctx context.Context) (io.ReadCloser, error)

// File ingests one file of ds named name (its extension gives the format).
// The first pass hashes the content (unless digest, a SHA-256, is given)
// and checks it parses; a file that does not is rejected with an error
// matching ErrBadFile or ErrUnknownFormat before anything is published.
// The second pass publishes.
func File(ctx context.Context, js jetstream.JetStream, ds *pipeline.Dataset, name string, open OpenFunc, digest []byte) (Result, error) {
	format, err := FormatOf(name)
	if err != nil {
		return Result{}, err
	}
	opts := OptionsFor(ds)
	sum, err := check(ctx, format, opts, open, digest == nil)
	if err != nil {
		return Result{}, err
	}
	if digest == nil {
		digest = sum
	}
	rc, err := open(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("open %s: %w", name, err)
	}
	defer rc.Close()
	r, err := NewReader(format, rc, opts)
	if err != nil {
		return Result{}, err
	}
	return publish(ctx, js, ds, r, ContentID(digest))
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
