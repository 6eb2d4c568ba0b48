package ingest

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jetfleet/jetfleet/pipeline"
)

// Format is a file format.
type Format string

// The file formats ingest reads.
const (
	NDJSON     Format = "ndjson"
	CSV        Format = "csv"
	FixedWidth Format = "fixed_width"
)

// DefaultMaxLineBytes bounds one line (one record), and so the memory a
// reader needs.
const DefaultMaxLineBytes = 1 << 20

// Options shape how a [Reader] reads.
type Options struct {
	// MaxLineBytes bounds one line; a longer one is a *ParseError, or
	// with KeepLong a record cut at MaxLineBytes. Default 1 MiB.
	MaxLineBytes int
	// KeepLong yields a line longer than MaxLineBytes as a record marked
	// Cut, holding its first MaxLineBytes bytes and its full Size, instead
	// of failing the file: for a publisher that skips it and says so.
	KeepLong bool
	// Delimiter separates CSV cells. Default ','.
	Delimiter rune
	// Types types CSV cells by column (number, integer, bool; anything
	// else is a string). A cell that does not parse as its type stays a
	// string, for validation to report.
	Types map[string]string
	// Columns lay out fixed-width lines. Required for FixedWidth.
	Columns []pipeline.FixedColumn
}

// OptionsFor are the options of ds's files: its CSV delimiter, CSV cells
// typed by its schema, and its fixed-width columns.
func OptionsFor(ds *pipeline.Dataset) Options {
	o := Options{Delimiter: ds.Ingest.Delimiter, Columns: ds.Ingest.FixedWidth, Types: map[string]string{}}
	for _, c := range ds.Schema {
		if k := c.FieldKind(); k != pipeline.TypeString {
			o.Types[c.Name] = k
		}
	}
	return o
}

// FormatOf tells a file's format from its name: .ndjson, .jsonl and .json
// are NDJSON, .csv is CSV, .txt, .dat and .fw are fixed-width. A trailing
// .gz is not supported (decompress first).
func FormatOf(name string) (Format, error) {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".ndjson", ".jsonl", ".json":
		return NDJSON, nil
	case ".csv":
		return CSV, nil
	case ".txt", ".dat", ".fw":
		return FixedWidth, nil
	}
	return "", fmt.Errorf("%w: %s (want .ndjson, .jsonl, .json, .csv, or .txt/.dat/.fw for fixed-width)", ErrUnknownFormat, filepath.Base(name))
}

// Record is one record read from a file.
type Record struct {
	// Line is the 1-based line the record starts on.
	Line int
	// Data is the record: a JSON object for CSV and fixed-width, the line
	// as written for NDJSON (which may not be JSON at all). It is valid
	// until the next call to Next.
	Data []byte
	// Cut says the line was longer than MaxLineBytes and Data holds its
	// start only (Options.KeepLong); Size is then its length.
	Cut  bool
	Size int
}

// Reader reads records from a file, one line (or CSV row) at a time.
// It is not safe for concurrent use.
type Reader struct {
	nextFunc func() (Record, error)
}

// NewReader reads format from r.
func NewReader(format Format, r io.Reader, o Options) (*Reader, error) {
	if o.MaxLineBytes <= 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	if o.Delimiter == 0 {
		o.Delimiter = ','
	}
	switch format {
	case NDJSON:
		l := newLines(r, o.MaxLineBytes)
		l.keepLong = o.KeepLong
		return &Reader{nextFunc: l.ndjson}, nil
	case CSV:
		return newCSV(r, o)
	case FixedWidth:
		if len(o.Columns) == 0 {
			return nil, fmt.Errorf("%w: fixed-width needs columns (ingest.fixed_width in the pipeline file)", ErrUnknownFormat)
		}
		l := newLines(r, o.MaxLineBytes)
		l.keepLong = o.KeepLong
		fw := &fixed{lines: l, cols: o.Columns}
		return &Reader{nextFunc: fw.next}, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownFormat, format)
}

// Next returns the next record, io.EOF after the last, or a
// *ParseError (matching ErrBadFile) when the file is broken there.
func (r *Reader) Next() (Record, error) { return r.nextFunc() }

// lines splits a stream into lines without holding more than one.
type lines struct {
	br       *bufio.Reader
	max      int
	keepLong bool
	n        int
	buf      []byte
	done     bool
	cut      bool // the last line was cut at max (keepLong)
	size     int  // and was this long
}

func newLines(r io.Reader, maxLen int) *lines {
	return &lines{br: bufio.NewReaderSize(r, 64<<10), max: maxLen}
}

var bom = []byte("\xef\xbb\xbf")

// line returns the next line without its end of line, io.EOF at the end.
func (l *lines) line() ([]byte, error) {
	if l.done {
		return nil, io.EOF
	}
	l.buf = l.buf[:0]
	l.cut, l.size = false, 0
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.size += len(chunk)
		if !l.cut {
			l.buf = append(l.buf, chunk...)
		}
		if len(l.buf) > l.max+2 && !l.cut {
			if !l.keepLong {
				l.n++
				return nil, &ParseError{Line: l.n, Msg: fmt.Sprintf("line longer than %d bytes", l.max)}
			}
			// Read on to the end of the line, keeping its start only.
			l.cut, l.buf = true, l.buf[:l.max]
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == io.EOF {
			l.done = true
			if len(l.buf) == 0 {
				return nil, io.EOF
			}
		} else if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		l.n++
		if l.cut {
			// The line's length without its end (a CR split from its LF
			// by the buffer counts: close enough for a message).
			if bytes.HasSuffix(chunk, []byte{'\n'}) {
				l.size--
			}
			if bytes.HasSuffix(chunk, []byte{'\r', '\n'}) {
				l.size--
			}
			return l.buf, nil
		}
		out := bytes.TrimSuffix(bytes.TrimSuffix(l.buf, []byte{'\n'}), []byte{'\r'})
		if l.n == 1 {
			out = bytes.TrimPrefix(out, bom)
		}
		l.size = len(out)
		return out, nil
	}
}

func (l *lines) ndjson() (Record, error) {
	for {
		b, err := l.line()
		if err != nil {
			return Record{}, err
		}
		if len(bytes.TrimSpace(b)) == 0 && !l.cut {
			continue
		}
		return Record{Line: l.n, Data: b, Cut: l.cut, Size: l.size}, nil
	}
}

type fixed struct {
	lines *lines
	cols  []pipeline.FixedColumn
	out   []byte
}

func (f *fixed) next() (Record, error) {
	for {
		b, err := f.lines.line()
		if err != nil {
			return Record{}, err
		}
		if l := f.lines; l.cut {
			return Record{Line: l.n, Data: b, Cut: true, Size: l.size}, nil
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		f.out = f.out[:0]
		f.out = append(f.out, '{')
		first := true
		for _, c := range f.cols {
			cell := cut(b, c.Start-1, c.Width)
			if c.Trim {
				cell = bytes.TrimSpace(cell)
			}
			if len(cell) == 0 {
				continue
			}
			f.out, first = appendField(f.out, first, c.Name, cell, c.Type)
		}
		f.out = append(f.out, '}')
		return Record{Line: f.lines.n, Data: f.out}, nil
	}
}

// cut returns width characters (code points) of b from character start;
// short lines give short or empty cells.
func cut(b []byte, start, width int) []byte {
	if isASCII(b) {
		if start >= len(b) {
			return nil
		}
		return b[start:min(start+width, len(b))]
	}
	i, n := 0, 0
	for n < start && i < len(b) {
		_, size := utf8.DecodeRune(b[i:])
		i += size
		n++
	}
	j := i
	for n < start+width && j < len(b) {
		_, size := utf8.DecodeRune(b[j:])
		j += size
		n++
	}
	return b[i:j]
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

type csvReader struct {
	cr     *csv.Reader
	header []string
	types  []string
	out    []byte
}

func newCSV(r io.Reader, o Options) (*Reader, error) {
	cr := csv.NewReader(&bomSkipper{r: r})
	cr.Comma = o.Delimiter
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return &Reader{nextFunc: func() (Record, error) { return Record{}, io.EOF }}, nil
	}
	if err != nil {
		return nil, csvErr(err)
	}
	c := &csvReader{cr: cr, header: append([]string(nil), header...)}
	seen := map[string]bool{}
	for i, h := range c.header {
		h = strings.TrimSpace(h)
		c.header[i] = h
		if h == "" {
			return nil, &ParseError{Line: 1, Msg: fmt.Sprintf("header column %d is empty", i+1)}
		}
		if seen[h] {
			return nil, &ParseError{Line: 1, Msg: fmt.Sprintf("header column %q repeats", h)}
		}
		seen[h] = true
		c.types = append(c.types, o.Types[h])
	}
	cr.FieldsPerRecord = len(c.header)
	return &Reader{nextFunc: c.next}, nil
}

func (c *csvReader) next() (Record, error) {
	row, err := c.cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Record{}, io.EOF
		}
		return Record{}, csvErr(err)
	}
	line, _ := c.cr.FieldPos(0)
	c.out = append(c.out[:0], '{')
	first := true
	for i, cell := range row {
		if cell == "" {
			continue // an empty cell is null, as DuckDB reads CSV
		}
		c.out, first = appendField(c.out, first, c.header[i], []byte(cell), c.types[i])
	}
	c.out = append(c.out, '}')
	return Record{Line: line, Data: c.out}, nil
}

func csvErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{Line: pe.Line, Msg: pe.Err.Error()}
	}
	return fmt.Errorf("read: %w", err)
}

// bomSkipper drops a UTF-8 byte order mark at the start of a stream.
type bomSkipper struct {
	r    io.Reader
	done bool
}

func (b *bomSkipper) Read(p []byte) (int, error) {
	if b.done {
		return b.r.Read(p)
	}
	b.done = true
	br := bufio.NewReader(b.r)
	if head, err := br.Peek(3); err == nil && bytes.Equal(head, bom) {
		_, _ = br.Discard(3)
	}
	b.r = br
	return br.Read(p)
}

// appendField appends "name":value to a JSON object being built. Typed
// cells that parse are written as JSON literals; everything else is a
// string. Invalid UTF-8 is copied as is, so validation rejects the record
// instead of it being silently altered.
func appendField(out []byte, first bool, name string, cell []byte, typ string) ([]byte, bool) {
	if !first {
		out = append(out, ',')
	}
	out = appendString(out, []byte(name))
	out = append(out, ':')
	switch typ {
	case pipeline.TypeNumber:
		if isNumber(cell) {
			return append(out, cell...), false
		}
	case pipeline.TypeInteger:
		if isNumber(cell) && !bytes.ContainsAny(cell, ".eE") {
			return append(out, cell...), false
		}
	case pipeline.TypeBool:
		if b, err := strconv.ParseBool(string(cell)); err == nil {
			return strconv.AppendBool(out, b), false
		}
	}
	return appendString(out, cell), false
}

// isNumber reports whether b is a JSON number literal.
func isNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if b[i] >= '1' && b[i] <= '9' {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	} else {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	return i == len(b)
}

const hexDigits = "0123456789abcdef"

func appendString(out, s []byte) []byte {
	out = append(out, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			out = append(out, '\\', c)
		case c == '\n':
			out = append(out, '\\', 'n')
		case c == '\r':
			out = append(out, '\\', 'r')
		case c == '\t':
			out = append(out, '\\', 't')
		case c < 0x20:
			out = append(out, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			out = append(out, c)
		}
	}
	return append(out, '"')
}
