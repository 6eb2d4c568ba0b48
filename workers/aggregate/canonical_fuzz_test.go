package aggregate

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// canonFuzzSeeds start FuzzCanonEncode; those both paths take are also
// stored through DuckDB by TestCanonRoundTripDuckDB. The later ones were
// found by the fuzzer.
var canonFuzzSeeds = []string{
	`{"k":"a"}`,
	`{"k":"a","s":"x","txt":1.50,"j":{"a":[1,"<b>"]},"d":12.5,"r":0.1,"i8":-3,"i16":"300","i32":1e3,"i64":"9007199254740993",` +
		`"u8":"7","u16":65535,"u32":0,"u64":18446744073709551615,"b":"Yes","tz":"2026-10-01T10:00:00.123456789+02:00",` +
		`"ts":1700000000.25,"dt":"2024-02-29","dec":"-12.345","dec0":0.5,"dec38":"0.00000000005","num":1e-3}`,
	`{"k":{"x":[1,2,{"y":"\u00e9"}]},"s":"a\u0000\ud83d\ude00\ud800","zz":[[[[]]]],"d":"-0","r":"1e39"}`,
	`{"k":7,"k":8,"s":null,"s":"last","tz":"2026-10-01 10:00:00","dt":1700000000123}`,
	`{"k":"a","tz":"0000-01-01T00:00:00+00:01","ts":"9999-12-31T23:59:59.999999999-23:59","dt":-99999999999}`,
	`{"k":"a","dec":"1/3","dec0":"0x1p-1","num":"99999999999999.9995","d":"0x1p-2","b":0,"i8":"127.0"}`,
	`{"k":"a","d":1e400}`,
	`{"k":"a","tz":1e300}`,
	"{\"k\":\"a\",\"s\":\"\xff\"}",
	"{\"k\":\"a\",\"zz\":\"\xff\"}",
	` null `,
	`[1,2]`,
	`{"k":"a",}`,
	// Found by the fuzzers.
	`{"k":1e00}`,
	"{\"k\":{\"x\":[1,2,{\"y\":\"\\u00e9\"}]},\"s\":\"a\\u0000\\ud83d\\ude00\\ud800\",\"\xfaz\":[[[[]]]],\"d\":\"-0\",\"r\":\"1e39\"}",
	`{"k":"key","dec38":1e-7}`,
	`{"k":"key","i8":"1e-1000"}`,
	`{"k":"key","i16":".0"}`,
	`{"k":"key","d":0e00000000}`,
	`{"k":"key","dec0":"0B1"}`,
	`{"k":"key","dec":"1000e-1000000"}`,
	`{"k":"key","dec":99.997}`,
	`{"k":"key","num":0.00000000000000000000000000000000}`,
	`{"k":"key","s":10000000000000000000000000000000}`,
	"{\"k\":\"key\",\"dt\":0 \r\r}",
	"{\"k\":\"a\",\"dec\":\"1/3\",\"dec0\":\"0x1p-1\",\"num\":\"9999999999\xff\xff5\",\"d\":\"0x1p-2\"}",
	"{\"k\":\"\x8d\x8d\",\"d\":1e700}",
	"{\"\x00d:\"a\"}",
}

// canonAcceptedSeeds are the seeds both paths take.
func canonAcceptedSeeds(t *testing.T) [][]byte {
	t.Helper()
	e, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(t, err)
	var recs [][]byte
	for _, s := range canonFuzzSeeds {
		_, _, oldErr := canonOld(canonTestSchema, "k", []byte(s))
		if _, _, err := e.Encode(nil, []byte(s)); err == nil && oldErr == nil {
			recs = append(recs, []byte(s))
		}
	}
	return recs
}

// FuzzCanonEncode checks Encode against the appender path on any input:
// no panic, the same decision and error text, the same values, output a
// JSON object, and output bounded by the input.
func FuzzCanonEncode(f *testing.F) {
	for _, s := range canonFuzzSeeds {
		f.Add([]byte(s))
	}
	byKey, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(f, err)
	byColumn, err := canonNewEncoder(canonTestSchema, "s")
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, tc := range []struct {
			e   *canonEncoder
			key string
		}{{byKey, "k"}, {byColumn, "s"}} {
			out, key, err := tc.e.Encode([]byte(canonTestPrefix), rec)
			if err != nil {
				require.Equal(t, canonTestPrefix, string(out))
			} else {
				require.LessOrEqual(t, len(out), len(canonTestPrefix)+1+2*len(rec)+64*len(canonTestSchema))
				require.LessOrEqual(t, len(key), 3*len(rec))
			}
			canonCheckAgainstOld(t, canonTestSchema, tc.key, rec, out, key, err)
		}
	})
}

// FuzzCanonValue is FuzzCanonEncode on one column's value, where byte
// mutations reach the converters more often than on whole records.
func FuzzCanonValue(f *testing.F) {
	index := map[string]uint8{}
	for i, c := range canonTestSchema {
		index[c.Name] = uint8(i)
	}
	for _, tc := range canonValueCases {
		f.Add(index[tc.col], []byte(tc.in))
	}
	e, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, col uint8, val []byte) {
		name := canonTestSchema[int(col)%len(canonTestSchema)].Name
		rec := append([]byte(`{"k":"key","`+name+`":`), val...)
		rec = append(rec, '}')
		out, key, err := e.Encode([]byte(canonTestPrefix), rec)
		canonCheckAgainstOld(t, canonTestSchema, "k", rec, out, key, err)
	})
}
