package subjects_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

// wireDoc is docs/wire.md, the wire contract for steps in other languages.
func wireDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../docs/wire.md")
	require.NoError(t, err)
	return string(b)
}

// quoted reports whether doc names v as code (`v`) or as a JSON string ("v").
func quoted(doc, v string) bool {
	return strings.Contains(doc, "`"+v+"`") || strings.Contains(doc, `"`+v+`"`)
}

// TestWireDocNamesEveryConstant: each header, stream, subject kind, control
// op, worker state and consumer metadata key defined in this package is in
// docs/wire.md. The constants are read from the source, so a new one
// fails this test until it is documented.
func TestWireDocNamesEveryConstant(t *testing.T) {
	t.Parallel()
	doc := wireDoc(t)
	fset := token.NewFileSet()
	names, err := filepath.Glob("*.go")
	require.NoError(t, err)
	var files []*ast.File
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		files = append(files, f)
	}
	checked := 0
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !regexp.MustCompile(`^(Header|Stream|Kind|Ctl|State|Meta|Advisory|TermReason)[A-Z]`).MatchString(name.Name) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					require.True(t, quoted(doc, v), "docs/wire.md does not name %s (%q)", name.Name, v)
					checked++
				}
			}
		}
	}
	require.Greater(t, checked, 35, "the source scan found the constants")

	for _, v := range []string{
		subjects.Ingest("<dataset>"), subjects.Valid("<dataset>"), subjects.Clean("<dataset>"),
		subjects.DeadLetter("<step>", "<dataset>"), subjects.Alert("<rule>"), subjects.Heartbeat("<step>", "<worker>"),
		subjects.Control("<step>", "<worker>"), subjects.ControlStep("<step>"), subjects.SupEvents, subjects.SupStatus,
		subjects.FleetBucket, subjects.LandingBucket, subjects.LookupBucket("<table>"),
		subjects.KeyWorker("<step>", "<worker>"), subjects.KeyGone("<step>", "<worker>"), subjects.KeySupervisor("<id>"),
		subjects.KeyRate("<consumer>"), subjects.KeyReplayed(0)[:len(subjects.KeyPrefixReplayed)] + ".<dlq seq>", subjects.KeyMarts,
		subjects.ReplayMsgID(0)[:len("replay:")] + "<dlq seq>",
	} {
		require.True(t, quoted(doc, v), "docs/wire.md does not name %q", v)
	}
}

// TestWireDocJSONFields: every JSON field of a heartbeat and of a control
// request and reply is documented.
func TestWireDocJSONFields(t *testing.T) {
	t.Parallel()
	doc := wireDoc(t)
	fields := func(v any, prefix string) []string {
		var out []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			out = append(out, prefix+name)
		}
		return out
	}
	for _, f := range append(fields(subjects.Beat{}, ""), fields(subjects.WorkerCounters{}, "counters.")...) {
		require.True(t, quoted(doc, f), "heartbeat field %s is not in docs/wire.md", f)
	}
	for _, f := range append(fields(subjects.ControlRequest{}, ""), fields(subjects.ControlReply{}, "")...) {
		require.True(t, quoted(doc, f), "control field %s is not in docs/wire.md", f)
	}
}

// TestWireDocMsgIDExamples: the worked examples of docs/wire.md are what
// DeriveMsgID gives, including the one hashed past 128 bytes.
func TestWireDocMsgIDExamples(t *testing.T) {
	t.Parallel()
	doc := wireDoc(t)
	_, table, ok := strings.Cut(doc, "<!-- msgid-examples")
	require.True(t, ok)
	table, _, ok = strings.Cut(table, "<!-- /msgid-examples -->")
	require.True(t, ok)
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\| `([^`]+)` \\| (\\d+) \\| `([^`]+)` \\|$")
	rows := row.FindAllStringSubmatch(table, -1)
	require.GreaterOrEqual(t, len(rows), 6)
	hashed := false
	for _, r := range rows {
		n, err := strconv.Atoi(r[3])
		require.NoError(t, err)
		require.Equal(t, r[4], subjects.DeriveMsgID(r[1], r[2], n), "row %s", r[0])
		hashed = hashed || strings.HasPrefix(r[4], "h:") && !strings.HasPrefix(r[1], "h:")
	}
	require.True(t, hashed, "an example shows the hashing of a long id")
}

// TestWireDocConsumerAndStreams: the consumer JSON example and the stream
// ages in docs/wire.md are the defaults of subjects.Consumer and Streams.
func TestWireDocConsumerAndStreams(t *testing.T) {
	t.Parallel()
	doc := wireDoc(t)
	i := strings.Index(doc, "```json\n{\"durable_name\"")
	require.GreaterOrEqual(t, i, 0, "consumer example")
	block, _, _ := strings.Cut(doc[i+len("```json\n"):], "```")
	var documented map[string]any
	require.NoError(t, json.Unmarshal([]byte(block), &documented))

	cfg, err := subjects.Consumer(subjects.StepTransform, "feedback", subjects.ConsumerOptions{})
	require.NoError(t, err)
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	var actual map[string]any
	require.NoError(t, json.Unmarshal(b, &actual))
	require.Len(t, documented, 10)
	for k, v := range documented {
		require.Equal(t, actual[k], v, "consumer field %s", k)
	}

	for _, s := range subjects.Streams(subjects.StreamOptions{}) {
		days := int(s.MaxAge / (24 * time.Hour))
		line := fmt.Sprintf("| `%s` | `%s` | %d days |", s.Name, s.Subjects[0], days)
		require.Contains(t, doc, line)
	}
	require.Contains(t, doc, "de-duplication window (`duplicate_window`) 2 minutes")
	def := subjects.Streams(subjects.StreamOptions{})[0]
	require.Equal(t, 2*time.Minute, def.Duplicates)
}
