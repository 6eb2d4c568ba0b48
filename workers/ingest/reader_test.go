package ingest_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

type line struct {
	n    int
	data string
}

func readAll(t testing.TB, f ingest.Format, in string, o ingest.Options) ([]line, error) {
	t.Helper()
	r, err := ingest.NewReader(f, strings.NewReader(in), o)
	if err != nil {
		return nil, err
	}
	var out []line
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, line{rec.Line, string(rec.Data)})
	}
}

func TestNDJSON(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		want     []line
		wantErr  string
	}{
		{"basic", "{\"a\":1}\n{\"a\":2}\n", []line{{1, `{"a":1}`}, {2, `{"a":2}`}}, ""},
		{"no final newline", "{\"a\":1}\n{\"a\":2}", []line{{1, `{"a":1}`}, {2, `{"a":2}`}}, ""},
		{"crlf", "{\"a\":1}\r\n{\"a\":2}\r\n", []line{{1, `{"a":1}`}, {2, `{"a":2}`}}, ""},
		{"blank lines keep numbering", "\n{\"a\":1}\n  \n\n{\"a\":2}\n", []line{{2, `{"a":1}`}, {5, `{"a":2}`}}, ""},
		{"bom", "\xef\xbb\xbf{\"a\":1}\n", []line{{1, `{"a":1}`}}, ""},
		{"garbage passes through", "not json\n[1]\n\xff\n", []line{{1, "not json"}, {2, "[1]"}, {3, "\xff"}}, ""},
		{"unicode", "{\"名\":\"🚀\"}\n", []line{{1, `{"名":"🚀"}`}}, ""},
		{"empty", "", nil, ""},
		{"too long", "{\"a\":1}\n" + strings.Repeat("x", 100) + "\n", []line{{1, `{"a":1}`}}, "line 2: line longer than 64 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(t, ingest.NDJSON, tc.in, ingest.Options{MaxLineBytes: 64})
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ingest.ErrBadFile)
				require.EqualError(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

// TestNDJSONKeepLong: with KeepLong a line over the limit is a record
// marked Cut, holding its start and its length, and reading goes on.
func TestNDJSONKeepLong(t *testing.T) {
	t.Parallel()
	long := `{"id":"b-3","x":"` + strings.Repeat("x", 200) + `"}`
	r, err := ingest.NewReader(ingest.NDJSON, strings.NewReader("{\"a\":1}\n"+long+"\r\n{\"a\":2}"), ingest.Options{MaxLineBytes: 64, KeepLong: true})
	require.NoError(t, err)
	var got []ingest.Record
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		rec.Data = append([]byte(nil), rec.Data...)
		got = append(got, rec)
	}
	require.Len(t, got, 3)
	require.False(t, got[0].Cut)
	require.True(t, got[1].Cut)
	require.Equal(t, 2, got[1].Line)
	require.Equal(t, len(long), got[1].Size)
	require.Equal(t, long[:64], string(got[1].Data))
	require.Equal(t, ingest.Record{Line: 3, Data: []byte(`{"a":2}`), Size: 7}, got[2])
}

func TestCSV(t *testing.T) {
	t.Parallel()
	types := map[string]string{"n": "number", "i": "integer", "b": "bool"}
	for _, tc := range []struct {
		name, in string
		want     []line
		wantErr  string
	}{
		{"typed", "s,n,i,b\nx,1.5,2,true\n", []line{{2, `{"s":"x","n":1.5,"i":2,"b":true}`}}, ""},
		{"empty cells are null", "s,n\n,\n", []line{{2, `{}`}}, ""},
		{"bad number stays string", "n,i,b\n7x,1.5,maybe\n", []line{{2, `{"n":"7x","i":"1.5","b":"maybe"}`}}, ""},
		{"NaN and Inf stay strings", "n\nNaN\nInf\n", []line{{2, `{"n":"NaN"}`}, {3, `{"n":"Inf"}`}}, ""},
		{"huge number kept", "n\n1e400\n", []line{{2, `{"n":1e400}`}}, ""},
		{"leading plus is a string", "n\n+1\n", []line{{2, `{"n":"+1"}`}}, ""},
		{"quotes and newlines", "s,n\n\"a \"\"q\"\"\nb\",1\n", []line{{2, `{"s":"a \"q\"\nb","n":1}`}}, ""},
		{"escapes", "s\n\"tab\there\\\"\n", []line{{2, `{"s":"tab\there\\"}`}}, ""},
		{"unicode", "s\nZoë 🚀\n", []line{{2, `{"s":"Zoë 🚀"}`}}, ""},
		{"bom and crlf", "\xef\xbb\xbfs,n\r\nx,1\r\n", []line{{2, `{"s":"x","n":1}`}}, ""},
		{"header trimmed", " s , n \nx,1\n", []line{{2, `{"s":"x","n":1}`}}, ""},
		{"header only", "s,n\n", nil, ""},
		{"empty file", "", nil, ""},
		{"wrong cell count", "s,n\nx,1\ny\n", []line{{2, `{"s":"x","n":1}`}}, "line 3: wrong number of fields"},
		{"bare quote", "s\na\"b\n", nil, "line 2: bare \" in non-quoted-field"},
		{"dup header", "s,s\n", nil, "line 1: header column \"s\" repeats"},
		{"empty header", "s,\n", nil, "line 1: header column 2 is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(t, ingest.CSV, tc.in, ingest.Options{Types: types})
			if tc.wantErr != "" {
				require.ErrorIs(t, err, ingest.ErrBadFile)
				require.EqualError(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tc.want, got)
			for _, l := range got {
				require.True(t, json.Valid([]byte(l.data)), l.data)
			}
		})
	}
	got, err := readAll(t, ingest.CSV, "a;b\n1;2\n", ingest.Options{Delimiter: ';'})
	require.NoError(t, err)
	require.Equal(t, []line{{2, `{"a":"1","b":"2"}`}}, got)

	got, err = readAll(t, ingest.CSV, "s\n\"\xff\"\n", ingest.Options{})
	require.NoError(t, err)
	require.False(t, utf8.ValidString(got[0].data), "invalid UTF-8 is kept for validation to reject, not replaced")
}

func TestFixedWidth(t *testing.T) {
	t.Parallel()
	cols := []pipeline.FixedColumn{
		{Name: "id", Start: 1, Width: 4, Type: "string", Trim: true},
		{Name: "n", Start: 5, Width: 6, Type: "number", Trim: true},
		{Name: "city", Start: 11, Width: 5, Type: "string", Trim: true},
		{Name: "raw", Start: 16, Width: 3, Type: "string", Trim: false},
	}
	for _, tc := range []struct {
		name, in string
		want     []line
	}{
		{"basic", "a1    12.5Paris x \n", []line{{1, `{"id":"a1","n":12.5,"city":"Paris","raw":" x "}`}}},
		{"unicode counts characters", "ü1    -3   Köln ÿ\n", []line{{1, `{"id":"ü1","n":-3,"city":"Köln","raw":" ÿ"}`}}},
		{"short line", "a1    7\n", []line{{1, `{"id":"a1","n":7}`}}},
		{"blank cells omitted", "          Rome\n", []line{{1, `{"city":"Rome"}`}}},
		{"bad number stays string", "a1  12x5\n", []line{{1, `{"id":"a1","n":"12x5"}`}}},
		{"blank lines skipped", "\n\na1\n", []line{{3, `{"id":"a1"}`}}},
		{"quotes escaped", "\"q\"\\\n", []line{{1, `{"id":"\"q\"\\"}`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(t, ingest.FixedWidth, tc.in, ingest.Options{Columns: cols})
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
	_, err := ingest.NewReader(ingest.FixedWidth, strings.NewReader(""), ingest.Options{})
	require.ErrorIs(t, err, ingest.ErrUnknownFormat)
}

func TestFormatOf(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]ingest.Format{"a.ndjson": ingest.NDJSON, "a.JSONL": ingest.NDJSON, "x/b.csv": ingest.CSV, "c.txt": ingest.FixedWidth} {
		got, err := ingest.FormatOf(name)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := ingest.FormatOf("a.xlsx")
	require.ErrorIs(t, err, ingest.ErrUnknownFormat)
}

func fuzzReader(f *testing.F, format ingest.Format, o ingest.Options, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := readAll(t, format, string(data), o)
		if err != nil {
			var pe *ingest.ParseError
			require.True(t, errors.As(err, &pe) || errors.Is(err, ingest.ErrBadFile), "error %v", err)
		}
		last := 0
		for _, l := range got {
			require.Greater(t, l.n, last, "line numbers increase")
			last = l.n
			if format != ingest.NDJSON && utf8.ValidString(l.data) {
				require.True(t, json.Valid([]byte(l.data)), "record %q is a JSON object", l.data)
			}
		}
	})
}

func FuzzNDJSON(f *testing.F) {
	fuzzReader(f, ingest.NDJSON, ingest.Options{MaxLineBytes: 256}, "{\"a\":1}\n\n{\"b\":2}\r\n", "\xef\xbb\xbfx", "", "\n\n\n")
}

func FuzzCSV(f *testing.F) {
	fuzzReader(f, ingest.CSV, ingest.Options{Types: map[string]string{"n": "number", "i": "integer", "b": "bool"}},
		"s,n,i,b\nx,1.5,2,true\n", "n\n\"1\"\"\"\n", "a,b\n1\n", "\xef\xbb\xbfn\n-0.5e+3\n")
}

func FuzzFixedWidth(f *testing.F) {
	cols := []pipeline.FixedColumn{
		{Name: "id", Start: 1, Width: 4, Type: "string", Trim: true},
		{Name: "n", Start: 5, Width: 6, Type: "number", Trim: true},
		{Name: "b", Start: 11, Width: 5, Type: "bool", Trim: false},
	}
	fuzzReader(f, ingest.FixedWidth, ingest.Options{Columns: cols}, "a1    12.5true \n", "ü\n", "\"\\\x01\n")
}
