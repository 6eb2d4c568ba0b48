package testrun

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/jetfleet/jetfleet/pipeline"
)

// ErrInvalidTest wraps every error in a test file.
var ErrInvalidTest = errors.New("invalid pipeline test file")

// Suffix ends the name of a test file: pipeline.test.yaml beside
// pipeline.yaml, or any other *.test.yaml.
const Suffix = ".test.yaml"

// File is a parsed test file.
type File struct {
	// Path is the file's path; relative paths inside resolve against its
	// directory.
	Path string
	// Pipeline is the pipeline file the cases run, resolved.
	Pipeline string
	Cases    []*Case
}

// Case is one test case: inputs published into a fresh fleet, and what
// must come out of it.
type Case struct {
	Name  string  `yaml:"name"`
	Input []Input `yaml:"input"`
	// Lookups replace the rows of the pipeline's lookup tables.
	Lookups map[string][]map[string]any `yaml:"lookups"`
	// Expect are hand-written expectations; sections left out are not
	// checked.
	Expect *Outputs `yaml:"expect"`
	// Golden is a file holding every output of the case, compared whole
	// and written by --update.
	Golden string `yaml:"golden"`
	// Timeout bounds the case's run ("30s"). Default: the runner's.
	Timeout string `yaml:"timeout"`

	line int
}

// Input is records published to a dataset's ingest subject, through the
// same reader `jetfleet publish` and the landing directory use.
type Input struct {
	// Dataset is the dataset; default the pipeline's only one.
	Dataset string `yaml:"dataset"`
	// Records are JSON objects (YAML mappings) or raw NDJSON lines
	// (strings, which need not be JSON: a malformed record).
	Records []any `yaml:"records"`
	// Text is raw content in Format.
	Text string `yaml:"text"`
	// Format of Text: ndjson (default), csv or fixed_width.
	Format string `yaml:"format"`
	// File is a file to publish; its extension gives the format.
	File string `yaml:"file"`
}

// Outputs is what a case produced, or what it must produce.
type Outputs struct {
	Clean       map[string]*Rows `yaml:"clean,omitempty"`
	DeadLetters *[]DeadLetter    `yaml:"dead_letters,omitempty"`
	Marts       map[string]*Rows `yaml:"marts,omitempty"`
	Alerts      *[]Alert         `yaml:"alerts,omitempty"`
}

// Rows are clean records or mart rows.
type Rows struct {
	// Fields limits the comparison to these fields (columns). Without
	// it, a row is compared on the fields its expected rows name.
	Fields []string `yaml:"fields,omitempty"`
	// Key names the fields that pair an expected row with a row that
	// differs, for a field-by-field diff. Default: the dataset's key for
	// clean records, the columns of text for mart rows.
	Key  []string         `yaml:"key,omitempty"`
	Rows []map[string]any `yaml:"rows,omitempty"`
	// Records is Rows by the name clean records go by.
	Records []map[string]any `yaml:"records,omitempty"`
	// Exact compares every field of every row (golden files).
	Exact bool `yaml:"exact,omitempty"`
}

// DeadLetter matches one dead letter; empty fields match any.
type DeadLetter struct {
	Dataset string `yaml:"dataset,omitempty"`
	Step    string `yaml:"step,omitempty"`
	// Reason is a substring of the reason, or a regular expression
	// between slashes (/^missing field/).
	Reason string `yaml:"reason,omitempty"`
	// Record holds fields the dead-lettered record must have.
	Record map[string]any `yaml:"record,omitempty"`
	// Data is the dead letter's body when it is no JSON object.
	Data string `yaml:"data,omitempty"`

	re *regexp.Regexp
}

// Alert matches one alert; empty fields match any.
type Alert struct {
	Rule     string `yaml:"rule"`
	Key      string `yaml:"key,omitempty"`
	Severity string `yaml:"severity,omitempty"`
	// Message is a substring of the message, or a regular expression
	// between slashes.
	Message string `yaml:"message,omitempty"`

	re *regexp.Regexp
}

type fileYAML struct {
	Pipeline string  `yaml:"pipeline"`
	Cases    []*Case `yaml:"cases"`
}

// Find lists the test files of path: path itself if it is a test file,
// the test file beside it if it is a pipeline file, or every test file
// under it if it is a directory.
func Find(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		if strings.HasSuffix(path, Suffix) {
			return []string{path}, nil
		}
		beside := strings.TrimSuffix(path, filepath.Ext(path)) + Suffix
		if _, err := os.Stat(beside); err != nil {
			return nil, fmt.Errorf("%w: %s is no test file (*%s) and has none beside it (%s)", ErrInvalidTest, path, Suffix, beside)
		}
		return []string{beside}, nil
	}
	var out []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != path && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, Suffix) {
			out = append(out, p)
		}
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%w: no *%s file under %s", ErrInvalidTest, Suffix, path)
	}
	return out, err
}

// Load reads and checks a test file.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidTest, path, err)
	}
	var raw fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true) // a misspelt key is an error, not a silently unchecked expectation
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalidTest, path, err)
	}
	caseLines(&doc, raw.Cases)
	f := &File{Path: path, Cases: raw.Cases}
	dir := filepath.Dir(path)
	if raw.Pipeline == "" {
		raw.Pipeline = strings.TrimSuffix(filepath.Base(path), Suffix) + ".yaml"
	}
	f.Pipeline = filepath.Join(dir, raw.Pipeline)
	var errs []error
	bad := func(c *Case, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s:%d: case %q: %s", ErrInvalidTest, path, c.line, c.Name, fmt.Sprintf(format, args...)))
	}
	if len(f.Cases) == 0 {
		errs = append(errs, fmt.Errorf("%w: %s: no cases", ErrInvalidTest, path))
	}
	var names []string
	for _, c := range f.Cases {
		if c.Name == "" {
			bad(c, "no name")
		} else if slices.Contains(names, c.Name) {
			bad(c, "a second case of this name")
		}
		names = append(names, c.Name)
		if len(c.Input) == 0 {
			bad(c, "no input")
		}
		for i, in := range c.Input {
			n := 0
			for _, set := range []bool{len(in.Records) > 0, in.Text != "", in.File != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				bad(c, "input[%d]: want exactly one of records, text and file", i)
			}
			if in.Format != "" && in.Text == "" {
				bad(c, "input[%d]: format applies to text only (a file's extension gives its format)", i)
			}
			if in.File != "" {
				c.Input[i].File = filepath.Join(dir, in.File)
			}
		}
		if c.Expect == nil && c.Golden == "" {
			bad(c, "neither expect nor golden: the case would check nothing")
		}
		if c.Golden != "" {
			c.Golden = filepath.Join(dir, c.Golden)
		}
		if c.Expect != nil {
			if err := c.Expect.compile(); err != nil {
				bad(c, "expect: %v", err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return f, nil
}

// caseLines notes the line of each case, for errors and the report.
func caseLines(doc *yaml.Node, cases []*Case) {
	if len(doc.Content) == 0 {
		return
	}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "cases" {
			continue
		}
		for j, n := range root.Content[i+1].Content {
			if j < len(cases) {
				cases[j].line = n.Line
			}
		}
	}
}

func (o *Outputs) compile() error {
	for _, set := range []map[string]*Rows{o.Clean, o.Marts} {
		for name, r := range set {
			if r == nil {
				return fmt.Errorf("%s: no rows (write rows: [] for none)", name)
			}
			r.Rows = append(r.Rows, r.Records...)
			r.Records = nil
		}
	}
	if o.DeadLetters != nil {
		for i := range *o.DeadLetters {
			d := &(*o.DeadLetters)[i]
			re, err := pattern(d.Reason)
			if err != nil {
				return fmt.Errorf("dead_letters[%d].reason: %w", i, err)
			}
			d.re = re
		}
	}
	if o.Alerts != nil {
		for i := range *o.Alerts {
			a := &(*o.Alerts)[i]
			re, err := pattern(a.Message)
			if err != nil {
				return fmt.Errorf("alerts[%d].message: %w", i, err)
			}
			a.re = re
		}
	}
	return nil
}

// pattern compiles /re/; a plain string is matched as a substring (nil).
func pattern(s string) (*regexp.Regexp, error) {
	if len(s) < 2 || !strings.HasPrefix(s, "/") || !strings.HasSuffix(s, "/") {
		return nil, nil
	}
	return regexp.Compile(s[1 : len(s)-1])
}

func matches(want string, re *regexp.Regexp, got string) bool {
	if re != nil {
		return re.MatchString(got)
	}
	return strings.Contains(got, want)
}

// loadSpec reads the pipeline of f afresh (a case changes its copy), with
// the pipeline's own checks.
func (f *File) loadSpec() (*pipeline.Spec, error) {
	return pipeline.Load(f.Pipeline)
}
