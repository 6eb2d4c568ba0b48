package pipeline_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/pipeline"
)

// scanSeeds are records the scanner must treat as DecodeRecord does:
// valid ones of every kind and escape, and the bad input a step meets.
var scanSeeds = []string{
	`{"order_id":"s-3","customer_id":"c-2","amount":5.5,"currency":" gbp ","country":"GB","ts":"2026-10-02T08:00:00+01:00","email":" A@B.com"}`,
	` {"a" : 1 , "b":[1,{"c":null}],"d":{"z":1,"a":[true,false]} } `,
	`{"a":"\u00e9\n\"\\\/\b\f\r\t","\u0062":2,"s":"\ud83d\ude80","lone":"\ud800x","u":"\u2028 <&>"}`,
	`{"a":1,"a":2,"b":{"x":1,"x":[]}}`,
	`{"n":-0.5e-7,"m":12345678901234567890123,"z":0,"e":1E+2}`,
	`{}`, `[]`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":-}`, `{"a":.5}`, `{"a":1e}`, `{"a":tru}`, `{"a":nul}`,
	`{"a":"\x"}`, `{"a":"\u12"}`, "{\"a\":\"\x01\"}", "{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}",
	`{"a":1} {"b":2}`, `{"a":1}x`, `this line is not json`, ``, "\u00a0{\"a\":1}\u00a0", "\v{}", `"x"`, `null`,
	`{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}`,
	`{"a":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`,
	`{"a":"` + strings.Repeat(`[{\"`, 100) + `"}`,
	`{"a":"x","b":"y` + "\u2029" + `"}`,
}

func FuzzScan(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, wantErr := pipeline.DecodeRecord(data)
		var fields pipeline.Fields
		err := fields.Scan(data)
		if wantErr != nil {
			require.EqualError(t, err, wantErr.Error(), "the same reason")
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, fields.Record(), "the same record")
		require.Equal(t, pipeline.ExprEnv(want), fields.Env())
		wantJSON, wantEncErr := pipeline.EncodeRecord(want)
		got, err := fields.AppendJSON(nil)
		if wantEncErr != nil {
			require.Error(t, err)
			return
		}
		require.NoError(t, err)
		require.Equal(t, string(wantJSON), string(got), "encoded as encoding/json does")
	})
}

func TestScanSeeds(t *testing.T) {
	t.Parallel()
	var fields pipeline.Fields
	require.NoError(t, fields.Scan([]byte(scanSeeds[2])))
	v, ok := fields.Get("b")
	require.True(t, ok, "an escaped key is found by its text")
	require.Equal(t, "2", v.Literal())
	v, _ = fields.Get("a")
	require.Equal(t, "é\n\"\\/\b\f\r\t", v.Str())
	v, _ = fields.Get("lone")
	require.Equal(t, "\uFFFDx", v.Str(), "a lone surrogate is U+FFFD, as encoding/json has it")
	require.NoError(t, fields.Scan([]byte(scanSeeds[3])))
	require.Equal(t, 2, fields.Len(), "a repeated name counts once")
	v, _ = fields.Get("a")
	require.Equal(t, "2", v.Literal(), "the last one wins")
}

func BenchmarkScan(b *testing.B) {
	data := []byte(`{"order_id":"o-000123","customer_id":"c-0042","country":"de","currency":"EUR","amount":"123.45","items":3,"ts":"2026-11-20T10:15:00Z","note":"gift wrap"}`)
	var fields pipeline.Fields
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := fields.Scan(data); err != nil || fields.Len() != 8 {
			b.Fatalf("scanned %d fields, err %v", fields.Len(), err)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	data := []byte(`{"order_id":"o-000123","customer_id":"c-0042","country":"DE","currency":"EUR","amount":123.45,"amount_usd":133.326,"ts":"2026-11-20T10:15:00Z","email_hash":"fb98d44ad7501a959f3f4f4a3f004fe2d9e581ea6207e218c4b02c08a4d75adf"}`)
	var fields pipeline.Fields
	require.NoError(b, fields.Scan(data))
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = fields.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPrefixField(t *testing.T) {
	t.Parallel()
	rec := `{"order_id":"b-3","n":12,"customer_id":"c-` + strings.Repeat("y", 50)
	for cut, want := range map[int]string{len(rec): `"b-3"`, 20: `"b-3"`, 14: "", 25: `"b-3"`} {
		v, ok := pipeline.PrefixField([]byte(rec[:cut]), "order_id")
		if want == "" {
			require.False(t, ok, "cut at %d", cut)
			continue
		}
		require.True(t, ok, "cut at %d", cut)
		require.Equal(t, "b-3", v.Str())
	}
	_, ok := pipeline.PrefixField([]byte(`{"n":12`), "n")
	require.False(t, ok, "a number at the cut may go on")
	v, ok := pipeline.PrefixField([]byte(`{"n":12,"x`), "n")
	require.True(t, ok)
	require.Equal(t, "12", v.Literal())
}
