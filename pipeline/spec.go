package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/jetfleet/jetfleet/subjects"
)

// Spec is a parsed, checked pipeline file.
type Spec struct {
	Name        string
	Description string
	// File is the path the spec was read from (or the name given to
	// Parse); relative paths inside it resolve against its directory.
	File     string
	Datasets []*Dataset   // in file order
	Lookups  []*Lookup    // in file order
	Marts    []*Mart      // in file order (generated anomaly marts last)
	Alerts   []*AlertRule // in file order
	Webhooks []*Webhook   // named targets, then inline URLs in rule order

	webhookRefs []webhookRef // rule references to named webhooks, checked at the end
}

// Dataset finds a dataset by name, nil if there is none.
func (s *Spec) Dataset(name string) *Dataset {
	for _, d := range s.Datasets {
		if d.Name == name {
			return d
		}
	}
	return nil
}

// Lookup finds a lookup table by name, nil if there is none.
func (s *Spec) Lookup(name string) *Lookup {
	for _, l := range s.Lookups {
		if l.Name == name {
			return l
		}
	}
	return nil
}

// Mart finds a mart by name, nil if there is none.
func (s *Spec) Mart(name string) *Mart {
	for _, m := range s.Marts {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// DatasetNames lists the datasets in file order.
func (s *Spec) DatasetNames() []string {
	names := make([]string, len(s.Datasets))
	for i, d := range s.Datasets {
		names[i] = d.Name
	}
	return names
}

// Load reads and parses the pipeline file at path.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pipeline: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a pipeline file's content; name is used in error messages
// and to resolve relative paths (CSV lookup tables, watch directories).
// The error joins every problem found, each a [*FieldError] matching
// [ErrInvalidSpec].
func Parse(name string, data []byte) (*Spec, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, &FieldError{Pos: Pos{File: name}, Msg: "empty file, want a pipeline with name and datasets"}
	} else if err != nil {
		return nil, &FieldError{Pos: Pos{File: name}, Msg: "not valid YAML: " + err.Error()}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &FieldError{Pos: Pos{File: name, Line: extra.Line}, Msg: "more than one YAML document; a pipeline file holds one"}
	}
	d := &decoder{file: name}
	s := &Spec{File: name}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	d.parseSpec(root, s)
	if err := d.err(); err != nil {
		return nil, err
	}
	d.check(s)
	if err := d.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path resolves p, a path written in the pipeline file, against the
// file's directory.
func (s *Spec) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(s.File), p)
}

func (d *decoder) token(n *yaml.Node, path, what, name string) {
	if err := subjects.ValidateToken(what, name); err != nil {
		d.errorf(n, path, "%v", err)
	}
}

func (d *decoder) parseSpec(n *yaml.Node, s *Spec) {
	var nameNode *yaml.Node
	d.mapping(n, "", field{name: "name", required: true, setFunc: func(v *yaml.Node, p string) {
		nameNode = v
		s.Name = d.str(v, p)
	}}, field{name: "description", setFunc: func(v *yaml.Node, p string) {
		s.Description = d.str(v, p)
	}}, field{name: "datasets", required: true, setFunc: func(v *yaml.Node, p string) {
		d.entries(v, p, "dataset", func(name string, k, v *yaml.Node, p string) {
			d.token(k, p, "dataset", name)
			s.Datasets = append(s.Datasets, d.parseDataset(name, k, v, p))
		})
		if v.Kind == yaml.MappingNode && len(v.Content) == 0 {
			d.errorf(v, p, "empty, want at least one dataset")
		}
	}}, field{name: "lookups", setFunc: func(v *yaml.Node, p string) {
		d.entries(v, p, "lookup table", func(name string, k, v *yaml.Node, p string) {
			d.token(k, p, "lookup table", name)
			s.Lookups = append(s.Lookups, d.parseLookup(name, k, v, p))
		})
	}}, field{name: "marts", setFunc: func(v *yaml.Node, p string) {
		d.entries(v, p, "mart", func(name string, k, v *yaml.Node, p string) {
			d.token(k, p, "mart", name)
			s.Marts = append(s.Marts, d.parseMart(name, k, v, p))
		})
	}}, field{name: "webhooks", setFunc: func(v *yaml.Node, p string) {
		d.entries(v, p, "webhook", func(name string, k, v *yaml.Node, p string) {
			d.token(k, p, "webhook", name)
			s.Webhooks = append(s.Webhooks, d.parseWebhook(name, k, v, p))
		})
	}}, field{name: "alerts", setFunc: func(v *yaml.Node, p string) {
		d.entries(v, p, "alert rule", func(name string, k, v *yaml.Node, p string) {
			d.token(k, p, "alert rule", name)
			if a := d.parseAlert(name, k, v, p, s); a != nil {
				s.Alerts = append(s.Alerts, a)
			}
		})
	}})
	if nameNode != nil && s.Name != "" {
		d.token(nameNode, "name", "pipeline", s.Name)
	}
}
