package pipeline_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
)

func TestDecodeRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		wantErr  error
		msg      string
	}{
		{"object", `{"a":1}`, nil, ""},
		{"padded", " \n{\"a\":1}\n ", nil, ""},
		{"nested", `{"a":{"b":[1,{"c":null}]}}`, nil, ""},
		{"huge number kept", `{"a":1e400}`, nil, ""},
		{"unicode", `{"名前":"Zoë 🚀"}`, nil, ""},
		{"empty", ``, pipeline.ErrMalformed, "empty"},
		{"blank", "  \n", pipeline.ErrMalformed, "empty"},
		{"text", `this line is not json`, pipeline.ErrMalformed, "invalid character 'h'"},
		{"truncated", `{"a":`, pipeline.ErrMalformed, "unexpected end"},
		{"trailing", `{"a":1} {"b":2}`, pipeline.ErrMalformed, "after the value"},
		{"NaN", `{"a":NaN}`, pipeline.ErrMalformed, "invalid character 'N'"},
		{"array", `[1,2]`, pipeline.ErrNotObject, "got an array"},
		{"string", `"x"`, pipeline.ErrNotObject, "got a string"},
		{"null", `null`, pipeline.ErrNotObject, "got null"},
		{"number", `42`, pipeline.ErrNotObject, "got a number"},
		{"bad utf8", "{\"a\":\"\xff\"}", pipeline.ErrInvalidUTF8, "offset 6"},
		{"64 levels", `{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`, nil, ""},
		{"65 levels", `{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`, pipeline.ErrTooDeep, "more than 64 levels of objects and arrays at offset 68"},
		{"100000 levels", strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000), pipeline.ErrTooDeep, "at offset 320"},
		{"100000 open brackets", strings.Repeat("[", 100000), pipeline.ErrTooDeep, "more than 64"},
		{"brackets in strings", `{"a":"` + strings.Repeat(`[{\"`, 1000) + `"}`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec, err := pipeline.DecodeRecord([]byte(tc.in))
			if tc.wantErr == nil {
				require.NoError(t, err)
				require.NotNil(t, rec)
				return
			}
			require.ErrorIs(t, err, tc.wantErr)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	rec, err := pipeline.DecodeRecord([]byte(`{"n":12345678901234567890123}`))
	require.NoError(t, err)
	require.Equal(t, json.Number("12345678901234567890123"), rec["n"], "numbers keep their digits")
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	all := []pipeline.Normalizer{pipeline.NormTrim, pipeline.NormUpper}
	for in, want := range map[string]string{
		" usd ":        "USD",
		"\t\u00a0gb\n": "GB", // no-break space is white space
		"":             "",
		"   ":          "",
		"ｕｓ":           "ＵＳ", // full-width letters stay full-width (and fail [A-Z])
		"émile":        "ÉMILE",
	} {
		require.Equal(t, want, pipeline.Normalize(in, all), "in %q", in)
	}
	require.Equal(t, "a@b.com", pipeline.Normalize(" A@B.com", []pipeline.Normalizer{pipeline.NormTrim, pipeline.NormLower}))
}

func TestTimeFormats(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		tf      pipeline.TimeFormats
		in      any
		want    string
		wantErr bool
	}{
		{"rfc3339 Z", pipeline.TimeFormats{}, "2026-10-01T10:00:00Z", "2026-10-01T10:00:00Z", false},
		{"rfc3339 offset", pipeline.TimeFormats{}, "2026-10-01T23:30:00-02:00", "2026-10-02T01:30:00Z", false},
		{"rfc3339 fraction", pipeline.TimeFormats{}, "2026-10-01T10:00:00.123+01:00", "2026-10-01T09:00:00.123Z", false},
		{"rfc3339 no offset", pipeline.TimeFormats{}, "2026-10-01T10:00:00", "", true},
		{"rfc3339 space", pipeline.TimeFormats{}, "2026-10-01 10:00:00Z", "", true},
		{"rfc3339 empty", pipeline.TimeFormats{}, "", "", true},
		{"rfc3339 number", pipeline.TimeFormats{}, json.Number("1"), "", true},
		{"rfc3339 bad month", pipeline.TimeFormats{}, "2026-13-01T10:00:00Z", "", true},
		{"datetime in zone", pipeline.TimeFormats{Formats: []string{"datetime"}, Location: berlin}, "2026-07-01 12:00:00", "2026-07-01T10:00:00Z", false},
		{"date", pipeline.TimeFormats{Formats: []string{"date"}}, "2026-07-01", "2026-07-01T00:00:00Z", false},
		{"go layout", pipeline.TimeFormats{Formats: []string{"02/01/2006 15:04"}}, "31/12/2026 23:59", "2026-12-31T23:59:00Z", false},
		{"second format wins", pipeline.TimeFormats{Formats: []string{"rfc3339", "date"}}, "2026-07-01", "2026-07-01T00:00:00Z", false},
		{"unix number", pipeline.TimeFormats{Formats: []string{"unix"}}, json.Number("1790000000"), "2026-09-21T14:13:20Z", false},
		{"unix string", pipeline.TimeFormats{Formats: []string{"unix"}}, "1790000000.5", "2026-09-21T14:13:20.5Z", false},
		{"unix_ms", pipeline.TimeFormats{Formats: []string{"unix_ms"}}, json.Number("1790000000123"), "2026-09-21T14:13:20.123Z", false},
		{"unix huge", pipeline.TimeFormats{Formats: []string{"unix"}}, json.Number("1e300"), "", true},
		{"unix inf", pipeline.TimeFormats{Formats: []string{"unix"}}, json.Number("1e400"), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.tf.Parse(tc.in)
			if tc.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, pipeline.FormatTime(got))
		})
	}
}

func TestKeyString(t *testing.T) {
	t.Parallel()
	require.Equal(t, "USD", pipeline.KeyString("USD"))
	require.Equal(t, "7", pipeline.KeyString(json.Number("7.0")))
	require.Equal(t, "7", pipeline.KeyString(int64(7)))
	require.Equal(t, "1.08", pipeline.KeyString(1.08))
	require.Equal(t, "true", pipeline.KeyString(true))
	require.Empty(t, pipeline.KeyString(nil))
}

// BenchmarkDecodeRecord is the first thing every step does with a record.
func BenchmarkDecodeRecord(b *testing.B) {
	data := []byte(`{"order_id":"o-000123","customer_id":"c-0042","country":"de","currency":"EUR","amount":"123.45","items":3,"ts":"2026-11-20T10:15:00Z","note":"gift wrap"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		rec, err := pipeline.DecodeRecord(data)
		if err != nil || len(rec) != 8 {
			b.Fatalf("decoded %d fields, err %v", len(rec), err)
		}
	}
}
