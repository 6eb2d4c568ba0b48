package aggregate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

// canonTestSchema has a column of every supported type (and some
// spellings); the key field k is not one of them.
var canonTestSchema = []Column{
	{"s", "VARCHAR"},
	{"txt", "text"},
	{"j", "JSON"},
	{"d", "DOUBLE"},
	{"r", "REAL"},
	{"i8", "TINYINT"},
	{"i16", "SMALLINT"},
	{"i32", "INTEGER"},
	{"i64", "BIGINT"},
	{"u8", "UTINYINT"},
	{"u16", "USMALLINT"},
	{"u32", "UINTEGER"},
	{"u64", "UBIGINT"},
	{"b", "BOOLEAN"},
	{"tz", "TIMESTAMPTZ"},
	{"ts", "TIMESTAMP"},
	{"dt", "DATE"},
	{"dec", "DECIMAL(10,2)"},
	{"dec0", "DECIMAL(3, 0)"},
	{"dec38", "DECIMAL(38,10)"},
	{"num", "NUMERIC"},
}

// canonShopSchema and canonShopRecord are examples/shop's clean orders.
var (
	canonShopSchema = shopDataset().Schema
	canonShopRecord = []byte(`{"order_id":"o-1","customer_id":"c-1","amount":10,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z","email_hash":"ab12f00d5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e","amount_usd":10}`)
)

const canonTestPrefix = `{"_id":0`

// canonValueCase is one value of one column, in the record
// {"k":"key","<col>":<in>}.
type canonValueCase struct {
	col  string
	in   string
	want string // the value Encode writes
	err  string // or the error, after "aggregate: field <col> (<type>): "
	// diff: the appender path took this value; the intake rejects it on
	// purpose (see canonExplained).
	diff bool
}

var canonValueCases = []canonValueCase{
	// Strings: copied when canonical, else unescaped and written again.
	{col: "s", in: `"plain"`, want: `"plain"`},
	{col: "s", in: `"é😀 ✓"`, want: `"é😀 ✓"`},
	{col: "s", in: `""`, want: `""`},
	{col: "s", in: `"a\"b\\c\/d\b\f\n\r\t\u0041\u00e9"`, want: `"a\"b\\c/d\u0008\u000c\n\r\tAé"`},
	{col: "s", in: `"nul:\u0000."`, want: `"nul:\u0000."`},
	{col: "s", in: `"\u001f\u007f"`, want: "\"\\u001f\x7f\""},
	{col: "s", in: `"\ud83d\ude00"`, want: `"😀"`},
	{col: "s", in: `"\uD83D\uDE00"`, want: `"😀"`},
	{col: "s", in: `"\ud800x"`, want: "\"\uFFFDx\""},           // lone high surrogate: U+FFFD as encoding/json
	{col: "s", in: `"\udc00\ud800"`, want: "\"\uFFFD\uFFFD\""}, // reversed pair
	{col: "s", in: `"\ud800\u0041"`, want: "\"\uFFFDA\""},
	{col: "s", in: "\"\u2028<>&\"", want: "\"\u2028<>&\""},
	{col: "s", in: "\"a\xffb\"", err: `invalid UTF-8: "\"a\xffb\""`, diff: true},
	{col: "s", in: "\"\\n\xc3\"", err: `invalid UTF-8: "\"\\n\xc3\""`, diff: true},
	{col: "s", in: "\"\xed\xa0\x80\"", err: `invalid UTF-8: "\"\xed\xa0\x80\""`, diff: true}, // UTF-8 of a surrogate
	{col: "s", in: `12.50`, want: `"12.50"`},
	{col: "s", in: `-0`, want: `"-0"`},
	{col: "s", in: `1e400`, want: `"1e400"`},
	{col: "s", in: `true`, want: `"true"`},
	{col: "s", in: `false`, want: `"false"`},
	{col: "s", in: `{"a": "b\"c", "d":[1, 2.50]}`, want: `"{\"a\": \"b\\\"c\", \"d\":[1, 2.50]}"`},
	{col: "s", in: "[\n\t1 ,\r\n2]", want: `"[\n\t1 ,\r\n2]"`},
	{col: "s", in: `{}`, want: `"{}"`},
	{col: "s", in: "{\"x\":\"\xff\"}", err: "invalid UTF-8: \"{\\\"x\\\":\\\"\\xff\\\"}\"", diff: true},
	{col: "s", in: `null`, want: ``},
	{col: "txt", in: `"t"`, want: `"t"`},
	{col: "j", in: `{"a": 1}`, want: `"{\"a\": 1}"`},
	{col: "j", in: `"abc"`, want: `"abc"`},
	{col: "j", in: `[1,"<b>"]`, want: `"[1,\"<b>\"]"`},
	{col: "j", in: `12.50`, want: `"12.50"`},

	// DOUBLE: number tokens are copied; the rest parsed as strconv does.
	{col: "d", in: `10`, want: `10`},
	{col: "d", in: `12.5`, want: `12.5`},
	{col: "d", in: `0`, want: `0`},
	{col: "d", in: `-0`, want: `-0.0`},
	{col: "d", in: `-0.0`, want: `-0.0`},
	{col: "d", in: `-0e3`, want: `-0e3`},
	{col: "d", in: `1E3`, want: `1E3`},
	{col: "d", in: `1e-400`, want: `1e-400`},
	{col: "d", in: `4.9e-324`, want: `4.9e-324`},
	{col: "d", in: `1.7976931348623157e308`, want: `1.7976931348623157e308`},
	{col: "d", in: `1.7976931348623159e308`, err: `not a number: 1.7976931348623159e308`},
	{col: "d", in: `1E400`, err: `not a number: 1E400`},
	{col: "d", in: `-1e400`, err: `not a number: -1e400`},
	{col: "d", in: `9007199254740993`, want: `9007199254740993`},
	{col: "d", in: `123456789012345678901234567890`, want: `123456789012345678901234567890`},
	{col: "d", in: `1234567890123456789012345678901234567890`, want: `1.2345678901234568e+39`},
	{col: "d", in: `" 12.5 "`, want: `12.5`},
	{col: "d", in: `"\u00a012.5\n"`, want: `12.5`},
	{col: "d", in: "\"\u00a012.5\u3000\"", want: `12.5`},
	{col: "d", in: `"1e3"`, want: `1000`},
	{col: "d", in: `"1e21"`, want: `1e+21`},
	{col: "d", in: `"0x1p-2"`, want: `0.25`},
	{col: "d", in: `"1_0"`, want: `10`},
	{col: "d", in: `"-0"`, want: `-0.0`},
	{col: "d", in: `"NaN"`, want: `"NaN"`},
	{col: "d", in: `"nan"`, want: `"NaN"`},
	{col: "d", in: `"Infinity"`, err: `not a number: "Infinity"`},
	{col: "d", in: `"-inf"`, err: `not a number: "-inf"`},
	{col: "d", in: `"abc"`, err: `not a number: "abc"`},
	{col: "d", in: `""`, err: `not a number: ""`},
	{col: "d", in: `true`, err: `not a number: true`},
	{col: "d", in: `{"a":[1,2,3],"b":"a long enough value to be cut"}`, err: `not a number: {"a":[1,2,3],"b":"a long enough value to...`},

	// REAL: the double rounded to float32, written exactly.
	{col: "r", in: `0.1`, want: `0.10000000149011612`},
	{col: "r", in: `16777217`, want: `16777216`},
	{col: "d", in: `"1234567.0"`, want: `1234567`},
	{col: "d", in: `"0.000001"`, want: `0.000001`},
	{col: "d", in: `"0.0000001"`, want: `1e-7`},
	{col: "d", in: `"-1e21"`, want: `-1e+21`},
	{col: "r", in: `3.4028235e38`, want: `3.4028234663852886e+38`},
	{col: "r", in: `1e39`, want: `"Infinity"`}, // float32 overflows as in the appender path
	{col: "r", in: `-1e39`, want: `"-Infinity"`},
	{col: "r", in: `1e-46`, want: `0`},
	{col: "r", in: `-1e-46`, want: `-0.0`},
	{col: "r", in: `"NaN"`, want: `"NaN"`},
	{col: "r", in: `1e400`, err: `not a number: 1e400`},

	// Integers, as strconv.ParseInt with the float fallback.
	{col: "i8", in: `127`, want: `127`},
	{col: "i8", in: `-128`, want: `-128`},
	{col: "i8", in: `128`, err: `not a 8-bit integer: 128`},
	{col: "i8", in: `-129`, err: `not a 8-bit integer: -129`},
	{col: "i8", in: `3.0`, want: `3`},
	{col: "i8", in: `"3.0"`, want: `3`},
	{col: "i8", in: `1e2`, want: `100`},
	{col: "i8", in: `"1e3"`, err: `not a 8-bit integer: "1e3"`},
	{col: "i8", in: `1.5`, err: `not a 8-bit integer: 1.5`},
	{col: "i8", in: `" +42 "`, want: `42`},
	{col: "i8", in: `"0x10"`, err: `not a 8-bit integer: "0x10"`},
	{col: "i8", in: `"007"`, want: `7`},
	{col: "i8", in: `true`, err: `not a 8-bit integer: true`},
	{col: "i8", in: `""`, err: `not a 8-bit integer: ""`},
	{col: "i8", in: `-0.0`, want: `0`},
	{col: "i16", in: `32767`, want: `32767`},
	{col: "i16", in: `32768`, err: `not a 16-bit integer: 32768`},
	{col: "i32", in: `2147483647`, want: `2147483647`},
	{col: "i32", in: `2147483648`, err: `not a 32-bit integer: 2147483648`},
	{col: "i32", in: `-2147483648.0`, want: `-2147483648`},
	{col: "i64", in: `9223372036854775807`, want: `9223372036854775807`},
	{col: "i64", in: `-9223372036854775808`, want: `-9223372036854775808`},
	{col: "i64", in: `9223372036854775808`, err: `not a 64-bit integer: 9223372036854775808`},
	{col: "i64", in: `9.2e18`, want: `9200000000000000000`},
	{col: "i64", in: `123456789012345678`, want: `123456789012345678`},
	{col: "i64", in: `"-1234567890123456789"`, want: `-1234567890123456789`},
	{col: "u8", in: `255`, want: `255`},
	{col: "u8", in: `256`, err: `not an unsigned 8-bit integer: 256`},
	{col: "u8", in: `-1`, err: `not an unsigned 8-bit integer: -1`},
	{col: "u8", in: `"+5"`, err: `not an unsigned 8-bit integer: "+5"`},
	{col: "u8", in: `3.0`, err: `not an unsigned 8-bit integer: 3.0`},
	{col: "u8", in: `" 7 "`, want: `7`},
	{col: "u16", in: `65535`, want: `65535`},
	{col: "u32", in: `4294967295`, want: `4294967295`},
	{col: "u32", in: `4294967296`, err: `not an unsigned 32-bit integer: 4294967296`},
	{col: "u64", in: `18446744073709551615`, want: `18446744073709551615`},
	{col: "u64", in: `18446744073709551616`, err: `not an unsigned 64-bit integer: 18446744073709551616`},

	// Booleans.
	{col: "b", in: `true`, want: `true`},
	{col: "b", in: `false`, want: `false`},
	{col: "b", in: `1`, want: `true`},
	{col: "b", in: `0`, want: `false`},
	{col: "b", in: `"TRUE"`, want: `true`},
	{col: "b", in: `" Yes "`, want: `true`},
	{col: "b", in: `"No"`, want: `false`},
	{col: "b", in: `"t"`, want: `true`},
	{col: "b", in: `"F"`, want: `false`},
	{col: "b", in: `"1"`, want: `true`},
	{col: "b", in: `"ye\u0073"`, want: `true`},
	{col: "b", in: "\"\u00a0no\"", want: `false`},
	{col: "b", in: `"2"`, err: `not a boolean: "2"`},
	{col: "b", in: `1.0`, err: `not a boolean: 1.0`},
	{col: "b", in: `"y"`, err: `not a boolean: "y"`},
	{col: "b", in: `"truee"`, err: `not a boolean: "truee"`},
	{col: "b", in: "\"\u212a\"", err: "not a boolean: \"\u212a\""},

	// Timestamps: RFC 3339 by hand, the other layouts through time.Parse,
	// epoch seconds or milliseconds; UTC, microseconds rounded down.
	{col: "tz", in: `"2026-10-01T10:00:00Z"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "ts", in: `"2026-10-01T10:00:00Z"`, want: `"2026-10-01T10:00:00.000000"`},
	{col: "tz", in: `"2026-10-01T12:30:00+02:30"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "ts", in: `"2026-10-01T00:30:00.1-00:30"`, want: `"2026-10-01T01:00:00.100000"`},
	{col: "tz", in: `"2026-10-01T10:00:00-00:00"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00.123456789Z"`, want: `"2026-10-01T10:00:00.123456+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00.9999999999999Z"`, want: `"2026-10-01T10:00:00.999999+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00.1234567+01:00"`, want: `"2026-10-01T09:00:00.123456+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00,5Z"`, want: `"2026-10-01T10:00:00.500000+00:00"`},
	{col: "tz", in: `"2026-10-01T1:00:00Z"`, want: `"2026-10-01T01:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00+24:00"`, want: `"2026-09-30T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01 10:00:00.5+01:00"`, want: `"2026-10-01T09:00:00.500000+00:00"`},
	{col: "tz", in: `"2026-10-01 10:00:00"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01 10:00:00Z"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01 10:00:00.25-01:00"`, want: `"2026-10-01T11:00:00.250000+00:00"`},
	{col: "tz", in: `"2026-10-01 1:00:00"`, want: `"2026-10-01T01:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00.5"`, want: `"2026-10-01T10:00:00.500000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00.5 "`, err: `not a timestamp: "2026-10-01T10:00:00.5 "`},
	{col: "tz", in: `"2026-10-01 "`, err: `not a timestamp: "2026-10-01 "`},
	{col: "tz", in: `"2026-1-01"`, err: `not a timestamp: "2026-1-01"`},
	{col: "tz", in: `"0000-00-00"`, err: `not a timestamp: "0000-00-00"`},
	{col: "tz", in: `"2026-10-01"`, want: `"2026-10-01T00:00:00.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T10:00:00\u005a"`, want: `"2026-10-01T10:00:00.000000+00:00"`},
	{col: "tz", in: `"2024-02-29T23:59:59Z"`, want: `"2024-02-29T23:59:59.000000+00:00"`},
	{col: "tz", in: `"2000-02-29T00:00:00Z"`, want: `"2000-02-29T00:00:00.000000+00:00"`},
	{col: "tz", in: `"2023-02-29T00:00:00Z"`, err: `not a timestamp: "2023-02-29T00:00:00Z"`},
	{col: "tz", in: `"1900-02-29"`, err: `not a timestamp: "1900-02-29"`},
	{col: "tz", in: `"0001-01-01T00:00:00Z"`, want: `"0001-01-01T00:00:00.000000+00:00"`},
	{col: "tz", in: `"0001-01-01T00:00:00+01:00"`, want: `"0000-12-31T23:00:00.000000+00:00"`},
	{col: "ts", in: `"0000-01-01T00:00:00+00:01"`, want: `"-0001-12-31T23:59:00.000000"`},
	{col: "tz", in: `"0000-02-29T00:00:00Z"`, want: `"0000-02-29T00:00:00.000000+00:00"`},
	{col: "tz", in: `"9999-12-31T23:59:59.999999999Z"`, want: `"9999-12-31T23:59:59.999999+00:00"`},
	{col: "tz", in: `"9999-12-31T23:59:59-01:00"`, want: `"10000-01-01T00:59:59.000000+00:00"`},
	{col: "tz", in: `"2026-10-01T24:00:00Z"`, err: `not a timestamp: "2026-10-01T24:00:00Z"`},
	{col: "tz", in: `"2026-10-01T10:00:60Z"`, err: `not a timestamp: "2026-10-01T10:00:60Z"`},
	{col: "tz", in: `"2026-10-01t10:00:00z"`, err: `not a timestamp: "2026-10-01t10:00:00z"`},
	{col: "tz", in: `"2026-10-01T10:00:00+0100"`, err: `not a timestamp: "2026-10-01T10:00:00+0100"`},
	{col: "tz", in: `" 2026-10-01T10:00:00Z"`, err: `not a timestamp: " 2026-10-01T10:00:00Z"`},
	{col: "tz", in: `"1700000000"`, err: `not a timestamp: "1700000000"`},
	{col: "tz", in: `"a very long text that is not a time at all"`, err: `not a timestamp: "a very long text that is not a time at a..."`},
	{col: "tz", in: "\"\\n\xff\"", err: `not a timestamp: "\n�"`},
	{col: "tz", in: "\"\xff\"", err: `not a timestamp: "\xff"`},
	{col: "tz", in: `1700000000`, want: `"2023-11-14T22:13:20.000000+00:00"`},
	{col: "tz", in: `1700000000.5`, want: `"2023-11-14T22:13:20.500000+00:00"`},
	{col: "tz", in: `1700000000.123456789`, want: `"2023-11-14T22:13:20.123456+00:00"`},
	{col: "tz", in: `1700000000123`, want: `"2023-11-14T22:13:20.123000+00:00"`},
	{col: "tz", in: `1e11`, want: `"1973-03-03T09:46:40.000000+00:00"`},
	{col: "tz", in: `99999999999`, want: `"5138-11-16T09:46:39.000000+00:00"`},
	{col: "tz", in: `-1`, want: `"1969-12-31T23:59:59.000000+00:00"`},
	{col: "tz", in: `-1.5`, want: `"1969-12-31T23:59:58.500000+00:00"`},
	{col: "tz", in: `-1e-7`, want: `"1969-12-31T23:59:59.999999+00:00"`},
	{col: "tz", in: `0.0000015`, want: `"1970-01-01T00:00:00.000001+00:00"`},
	{col: "tz", in: `-0`, want: `"1970-01-01T00:00:00.000000+00:00"`},
	{col: "tz", in: `-62135596801`, want: `"0000-12-31T23:59:59.000000+00:00"`},
	{col: "tz", in: `-99999999999`, want: `"-1199-02-15T14:13:21.000000+00:00"`},
	{col: "tz", in: `-100000000000.5`, want: `"1966-10-31T14:13:20.000000+00:00"`},
	{col: "tz", in: `9223371158400000`, want: `"294246-12-31T00:00:00.000000+00:00"`},
	{col: "tz", in: `9223371244799998`, want: `"294246-12-31T23:59:59.998000+00:00"`},
	{col: "tz", in: `9223371244800000`, err: `not a timestamp: 9223371244800000`, diff: true},
	{col: "tz", in: `-9223372036854775808`, err: `not a timestamp: -9223372036854775808`, diff: true},
	{col: "tz", in: `1e300`, err: `not a timestamp: 1e300`, diff: true},
	{col: "tz", in: `1e400`, err: `not a timestamp: 1e400`},
	{col: "tz", in: `true`, err: `not a timestamp: true`},
	{col: "tz", in: `{"a":1}`, err: `not a timestamp: {"a":1}`},

	// Dates: the UTC date of the time.
	{col: "dt", in: `"2026-10-01"`, want: `"2026-10-01"`},
	{col: "dt", in: `"2026-10-01T23:30:00-01:00"`, want: `"2026-10-02"`},
	{col: "dt", in: `"2024-02-29 12:00:00"`, want: `"2024-02-29"`},
	{col: "dt", in: `"0000-01-01T00:00:00+01:00"`, want: `"-0001-12-31"`},
	{col: "dt", in: `1700000000`, want: `"2023-11-14"`},
	{col: "dt", in: `-1`, want: `"1969-12-31"`},
	{col: "dt", in: `-99999999999`, want: `"-1199-02-15"`},
	{col: "dt", in: `1e17`, want: `"3170843-11-07"`},
	{col: "dt", in: `185542587014400000`, want: `"5881580-07-10"`},
	{col: "dt", in: `-185542587014400000`, want: `"-5877641-06-25"`},
	{col: "dt", in: `185542587100800000`, err: `not a date: 185542587100800000`, diff: true},
	{col: "dt", in: `1e19`, err: `not a date: 1e19`, diff: true},
	{col: "dt", in: `"2026-13-01"`, err: `not a date: "2026-13-01"`},
	{col: "dt", in: `true`, err: `not a date: true`},
	{col: "dt", in: `1e400`, err: `not a date: 1e400`},

	// DECIMAL: rounded half away from zero to the scale, range-checked.
	{col: "dec", in: `12.5`, want: `"12.50"`},
	{col: "dec", in: `12`, want: `"12.00"`},
	{col: "dec", in: `"12.345"`, want: `"12.35"`},
	{col: "dec", in: `12.344`, want: `"12.34"`},
	{col: "dec", in: `-12.345`, want: `"-12.35"`},
	{col: "dec", in: `0.005`, want: `"0.01"`},
	{col: "dec", in: `-0.005`, want: `"-0.01"`},
	{col: "dec", in: `-0.004`, want: `"0.00"`},
	{col: "dec", in: `-0`, want: `"0.00"`},
	{col: "dec", in: `0.0049999999999999999999999999999999999999999999`, want: `"0.00"`},
	{col: "dec", in: `99999999.994`, want: `"99999999.99"`},
	{col: "dec", in: `99999999.995`, err: `decimal out of range for DECIMAL(10,2): 99999999.995`},
	{col: "dec", in: `-99999999.995`, err: `decimal out of range for DECIMAL(10,2): -99999999.995`},
	{col: "dec", in: `1e7`, want: `"10000000.00"`},
	{col: "dec", in: `1E+7`, want: `"10000000.00"`},
	{col: "dec", in: `1e8`, err: `decimal out of range for DECIMAL(10,2): 1e8`},
	{col: "dec", in: `123456789012345678901234567890`, err: `decimal out of range for DECIMAL(10,2): 123456789012345678901234567890`},
	{col: "dec", in: `"1e1000000"`, err: `decimal out of range for DECIMAL(10,2): "1e1000000"`},
	{col: "dec", in: `"1e1000001"`, err: `not a decimal: "1e1000001"`},
	{col: "dec", in: `"1e-1000000"`, want: `"0.00"`},
	{col: "dec", in: `"1e-1000001"`, err: `not a decimal: "1e-1000001"`},
	{col: "dec", in: `"0e-99999999999"`, want: `"0.00"`},
	{col: "dec", in: `"1e99999999999999999999"`, err: `not a decimal: "1e99999999999999999999"`},
	{col: "dec", in: `"1/3"`, want: `"0.33"`},
	{col: "dec", in: `"-2/3"`, want: `"-0.67"`},
	{col: "dec", in: `"1/0"`, err: `not a decimal: "1/0"`},
	{col: "dec", in: `"0x10"`, want: `"16.00"`},
	{col: "dec", in: `"0x1p-3"`, want: `"0.13"`},
	{col: "dec", in: `"1_000"`, want: `"1000.00"`}, // big.Rat reads underscores
	{col: "dec", in: `"1__0"`, err: `not a decimal: "1__0"`},
	{col: "dec", in: `"5."`, want: `"5.00"`},
	{col: "dec", in: `".5"`, want: `"0.50"`},
	{col: "dec", in: `"-.5e1"`, want: `"-5.00"`},
	{col: "dec", in: `"+1.005"`, want: `"1.01"`},
	{col: "dec", in: `" 00012.3450 "`, want: `"12.35"`},
	{col: "dec", in: `"1e"`, err: `not a decimal: "1e"`},
	{col: "dec", in: `"."`, err: `not a decimal: "."`},
	{col: "dec", in: `"abc"`, err: `not a decimal: "abc"`},
	{col: "dec", in: `""`, err: `not a decimal: ""`},
	{col: "dec", in: `true`, err: `not a decimal: true`},
	{col: "dec0", in: `999.4`, want: `"999"`},
	{col: "dec0", in: `999.5`, err: `decimal out of range for DECIMAL(3,0): 999.5`},
	{col: "dec0", in: `-0.5`, want: `"-1"`},
	{col: "dec0", in: `0.4`, want: `"0"`},
	{col: "dec0", in: `5e-1`, want: `"1"`},
	{col: "dec0", in: `4.9999e-1`, want: `"0"`},
	{col: "dec38", in: `"1234567890123456789012345678.1234567891"`, want: `"1234567890123456789012345678.1234567891"`},
	{col: "dec38", in: `"9999999999999999999999999999.99999999994"`, want: `"9999999999999999999999999999.9999999999"`},
	{col: "dec38", in: `"9999999999999999999999999999.99999999995"`, err: `decimal out of range for DECIMAL(38,10): "9999999999999999999999999999.9999999999...`},
	{col: "dec38", in: `"12345678901234567890123456789"`, err: `decimal out of range for DECIMAL(38,10): "12345678901234567890123456789"`},
	{col: "dec38", in: `-0.00000000005`, want: `"-0.0000000001"`},
	{col: "dec38", in: `0.00000000004999999999999999999999`, want: `"0.0000000000"`},
	{col: "dec38", in: `1.00000000005000000000000000000000000000000000001`, want: `"1.0000000001"`},
	{col: "num", in: `1.0005`, want: `"1.001"`},
	{col: "num", in: `-999999999999999.9994`, want: `"-999999999999999.999"`},
}

// canonRecordCase is a whole record.
type canonRecordCase struct {
	name string
	rec  string
	want string // what Encode appends after canonTestPrefix
	key  string
	err  string // or the error
	diff bool   // as canonValueCase.diff
}

var canonRecordCases = []canonRecordCase{
	{name: "schema order", rec: `{"dec":1,"k":"a","s":"x","b":true}`, want: `,"s":"x","b":true,"dec":"1.00"}`, key: "a"},
	{name: "no columns", rec: `{"k":"a"}`, want: `}`, key: "a"},
	{name: "spaces", rec: " \t\n{ \"k\" : \"a\" , \"s\" :\r\n\"x\" } \r\n", want: `,"s":"x"}`, key: "a"},
	{name: "null column", rec: `{"k":"a","s":null,"d":null}`, want: `}`, key: "a"},
	{name: "duplicate: last wins", rec: `{"k":"a","s":"1","d":1,"s":"2"}`, want: `,"s":"2","d":1}`, key: "a"},
	{name: "duplicate: last null wins", rec: `{"k":"a","s":"1","s":null}`, want: `}`, key: "a"},
	{name: "duplicate: bad value then good", rec: `{"k":"a","d":"x","d":2}`, want: `,"d":2}`, key: "a"},
	{name: "duplicate key field", rec: `{"k":"a","k":"b"}`, want: `}`, key: "b"},
	{name: "escaped member name", rec: `{"\u006b":"a","\u0073":"esc"}`, want: `,"s":"esc"}`, key: "a"},
	{name: "case sensitive names", rec: `{"k":"a","S":"x"}`, want: `}`, key: "a"},
	{name: "unknown fields validated, dropped", rec: `{"k":"a","zz":{"x":[1,{"y":null,"z":[]}],"w":-1.5e3},"s":"x"}`, want: `,"s":"x"}`, key: "a"},
	{name: "unknown field with invalid UTF-8", rec: "{\"k\":\"a\",\"zz\":\"\xff\",\"\xfe\":1}", want: `}`, key: "a"},
	{name: "key number", rec: `{"k":42}`, want: `}`, key: "42"},
	{name: "key float", rec: `{"k":-1.50e3}`, want: `}`, key: "-1.50e3"},
	{name: "key true", rec: `{"k":true}`, want: `}`, key: "true"},
	{name: "key object", rec: `{"k":{"a": [1, 2]}}`, want: `}`, key: `{"a": [1, 2]}`},
	{name: "key escapes", rec: `{"k":"a\"b\u00e9\n"}`, want: `}`, key: "a\"bé\n"},
	{name: "key NUL", rec: `{"k":"\u0000"}`, want: `}`, key: "\x00"},
	{name: "key missing", rec: `{"s":"x"}`, err: `aggregate: record has no key field "k"`},
	{name: "key null", rec: `{"k":null,"s":"x"}`, err: `aggregate: record has no key field "k"`},
	{name: "key null last", rec: `{"k":"a","k":null}`, err: `aggregate: record has no key field "k"`},
	{name: "key empty", rec: `{"k":""}`, err: `aggregate: record has an empty key field "k"`},
	{name: "key empty object", rec: `{"k":{}}`, want: `}`, key: `{}`},
	{name: "key invalid UTF-8", rec: "{\"k\":\"a\xff\"}", err: `aggregate: record has a key field "k" that is not valid UTF-8`, diff: true},
	{name: "key before fields", rec: `{"s":"x","d":"y"}`, err: `aggregate: record has no key field "k"`},
	{name: "first bad field in schema order", rec: `{"k":"a","i8":1000,"d":"y"}`, err: `aggregate: field d (DOUBLE): not a number: "y"`},
	{name: "top-level null", rec: ` null `, err: `aggregate: record has no key field "k"`},
	{name: "empty object", rec: `{}`, err: `aggregate: record has no key field "k"`},
}

// canonBadJSON are records json.Unmarshal rejects.
var canonBadJSON = []string{
	``, ` `, `[]`, `[{"k":"a"}]`, `"x"`, `1`, `true`, `nul`, `{`, `}`, `{"k":"a"`, `{"k":"a"}x`, `{"k":"a"}{}`, `{"k":"a"} null`,
	`{"k":'a'}`, `{k:"a"}`, `{"k":"a",}`, `{,"k":"a"}`, `{"k" "a"}`, `{"k":"a" "s":"b"}`, `{"k"::"a"}`,
	`{"k":01}`, `{"k":1.}`, `{"k":.5}`, `{"k":-}`, `{"k":1e}`, `{"k":1e+}`, `{"k":+1}`, `{"k":0x1}`, `{"k":1.5.5}`, `{"k":--1}`,
	`{"k":tru}`, `{"k":nul}`, `{"k":True}`, `{"k":NaN}`, `{"k":Infinity}`,
	"{\"k\":\"\x01\"}", "{\"k\":\"a\nb\"}", `{"k":"\q"}`, `{"k":"\u12"}`, `{"k":"\u12g4"}`, `{"k":"\`, `{"k":"abc`, `{"k":"\'"}`,
	`{"k":[1,]}`, `{"k":[1 2]}`, `{"k":[,1]}`, `{"k":{"a"}}`, `{"k":{"a":1,}}`, `{"k":{"a":1 "b":2}}`, `{"k":{1:2}}`,
	`{"k":[}`, `{"k":]}`, `{"k":{]}`, `{"k":[1}`, `{"k":{"a":[1}]}`, `{"k":"a","zz":[[[[`,
	"{\"k\":\"a\"}\x00", "\xef\xbb\xbf{\"k\":\"a\"}", "{\"k\":\"a\"}\f",
}

func TestCanonEncodeValues(t *testing.T) {
	t.Parallel()
	types := map[string]string{}
	for _, c := range canonTestSchema {
		types[c.Name] = c.Type
	}
	for _, tc := range canonValueCases {
		t.Run(tc.col+" "+tc.in, func(t *testing.T) {
			t.Parallel()
			e, err := canonNewEncoder(canonTestSchema, "k")
			require.NoError(t, err)
			rec := []byte(`{"k":"key","` + tc.col + `":` + tc.in + `}`)
			out, key, err := e.Encode([]byte(canonTestPrefix), rec)
			if tc.err != "" {
				require.EqualError(t, err, fmt.Sprintf("aggregate: field %s (%s): %s", tc.col, types[tc.col], tc.err))
				require.Equal(t, canonTestPrefix, string(out), "dst is given back unchanged")
			} else {
				require.NoError(t, err)
				require.Equal(t, "key", string(key))
				want := canonTestPrefix + "}"
				if tc.want != "" {
					want = canonTestPrefix + `,"` + tc.col + `":` + tc.want + "}"
				}
				require.Equal(t, want, string(out))
			}
			require.Equal(t, tc.diff, canonCheckAgainstOld(t, canonTestSchema, "k", rec, out, key, err))
		})
	}
}

func TestCanonEncodeRecords(t *testing.T) {
	t.Parallel()
	for _, tc := range canonRecordCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, err := canonNewEncoder(canonTestSchema, "k")
			require.NoError(t, err)
			out, key, err := e.Encode([]byte(canonTestPrefix), []byte(tc.rec))
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
			} else {
				require.NoError(t, err)
				require.Equal(t, canonTestPrefix+tc.want, string(out))
				require.Equal(t, tc.key, string(key))
			}
			require.Equal(t, tc.diff, canonCheckAgainstOld(t, canonTestSchema, "k", []byte(tc.rec), out, key, err))
		})
	}
}

func TestCanonEncodeKeyIsColumn(t *testing.T) {
	t.Parallel()
	e, err := canonNewEncoder(canonShopSchema, "order_id")
	require.NoError(t, err)
	out, key, err := e.Encode([]byte(canonTestPrefix), []byte(`{"order_id":"o-\u0031","amount":"12"}`))
	require.NoError(t, err)
	require.Equal(t, "o-1", string(key))
	require.Equal(t, canonTestPrefix+`,"order_id":"o-1","amount":12}`, string(out))

	// The key stays valid while column values are unescaped.
	e, err = canonNewEncoder([]Column{{"id", "BIGINT"}, {"s", "VARCHAR"}}, "id")
	require.NoError(t, err)
	out, key, err = e.Encode(nil, []byte(`{"id":"\u0037","s":"\u0041\u0042"}`))
	require.NoError(t, err)
	require.Equal(t, "7", string(key))
	require.Equal(t, `,"id":7,"s":"AB"}`, string(out))

	out, _, err = e.Encode(nil, []byte(`{"id":"x"}`))
	require.EqualError(t, err, `aggregate: field id (BIGINT): not a 64-bit integer: "x"`)
	require.Empty(t, out)
}

func TestCanonEncodeBadJSON(t *testing.T) {
	t.Parallel()
	e, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(t, err)
	for _, rec := range canonBadJSON {
		var m map[string]json.RawMessage
		require.Error(t, json.Unmarshal([]byte(rec), &m), "%q", rec)
		out, key, err := e.Encode([]byte(canonTestPrefix), []byte(rec))
		require.Error(t, err, "%q", rec)
		require.True(t, strings.HasPrefix(err.Error(), "aggregate: record is not a JSON object"), "%q: %v", rec, err)
		require.Equal(t, canonTestPrefix, string(out))
		require.Nil(t, key)
	}
}

func TestCanonEncodeDepth(t *testing.T) {
	t.Parallel()
	e, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(t, err)
	// Each repeat of open adds levels to the record's own one.
	for _, p := range []struct {
		open, closing string
		levels        int
	}{{"[", "]", 1}, {`{"a":`, "}", 1}, {`[{"a":`, "}]", 2}, {`[1,{"a":`, "}]", 2}} {
		reps := (canonMaxDepth - 1) / p.levels
		for _, n := range []int{reps, reps + 1} {
			rec := []byte(`{"k":"a","zz":` + strings.Repeat(p.open, n) + `0` + strings.Repeat(p.closing, n) + `}`)
			ok := 1+n*p.levels <= canonMaxDepth
			require.Equal(t, ok, json.Valid(rec), "encoding/json's limit")
			_, _, err := e.Encode(nil, rec)
			if ok {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, "exceeded max depth")
			}
		}
	}
	// Deep in a column copied as text.
	deep := strings.Repeat("[", canonMaxDepth-1) + strings.Repeat("]", canonMaxDepth-1)
	out, _, err := e.Encode(nil, []byte(`{"k":"a","s":`+deep+`}`))
	require.NoError(t, err)
	require.Equal(t, `,"s":"`+deep+`"}`, string(out))
}

func TestCanonNewEncoder(t *testing.T) {
	t.Parallel()
	for _, typ := range []string{"HUGEINT", "VARCHAR[]", "DECIMAL(10)", "DECIMAL(39,2)", "DECIMAL(5,6)", "DECIMAL(0,0)", "TIMESTAMP_NS", "", "MAP(VARCHAR, INT)"} {
		_, want := converterFor(typ)
		require.Error(t, want, typ)
		_, err := canonNewEncoder([]Column{{"c", typ}}, "k")
		require.EqualError(t, err, "column c: "+want.Error())
		require.ErrorIs(t, err, errCanonUnsupportedType)
	}
	for _, typ := range []string{" varchar(20) ", "timestamp with time zone", "Decimal ( 12 , 4 )", "DECIMAL(10,2)x", "int", "float", "Logical"} {
		_, want := converterFor(typ)
		require.NoError(t, want, typ)
		_, err := canonNewEncoder([]Column{{"c", typ}}, "k")
		require.NoError(t, err, typ)
	}
	_, err := canonNewEncoder([]Column{{"c", "INT"}, {"c", "INT"}}, "k")
	require.Error(t, err)
	_, err = canonNewEncoder([]Column{{"c\xff", "INT"}}, "k")
	require.Error(t, err)

	e, err := canonNewEncoder([]Column{{`we"ird\`, "INT"}, {"é", "INT"}}, "k")
	require.NoError(t, err)
	out, _, err := e.Encode(nil, []byte(`{"k":1,"é":2,"we\"ird\\":1}`))
	require.NoError(t, err)
	require.Equal(t, `,"we\"ird\\":1,"é":2}`, string(out))
	require.Equal(t, timeLayouts, canonTimeLayouts)
}

// Not parallel: testing.AllocsPerRun refuses parallel tests.
func TestCanonEncodeZeroAllocs(t *testing.T) {
	shop, err := canonNewEncoder(canonShopSchema, "order_id")
	require.NoError(t, err)
	all, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(t, err)
	for _, tc := range []struct {
		e   *canonEncoder
		rec string
	}{
		{shop, string(canonShopRecord)},
		{shop, `{"order_id":"o-\u0032","amount":"12.5","ts":"2026-10-01T12:00:00.123+02:00","zz":{"a":[1,"é"]}}`},
		{shop, `{"order_id":"o-1","ts":1700000000123}`},
		{all, `{"k":"a","s":"é\n","txt":{"a":1},"j":[1],"d":-0,"r":0.1,"i8":"3.0","i64":-12,"u64":18446744073709551615,"b":"yes",` +
			`"tz":"2026-10-01T10:00:00Z","ts":1700000000.5,"dt":"2026-10-01","dec":"-12.345","dec0":7,"dec38":"1234567890123456789012345678.1234567891","num":1e-2}`},
	} {
		dst, rec := make([]byte, 0, 4096), []byte(tc.rec)
		_, _, err := tc.e.Encode(dst, rec) // warm the scratch buffers
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(100, func() {
			_, _, _ = tc.e.Encode(dst[:0], rec)
		})
		require.Zero(t, allocs, tc.rec)
	}
}

// canonOld is the appender path of today (state.go's decode with
// convert.go's converters) for one record: its key and the value of each
// column (nil when absent).
func canonOld(schema []Column, key string, rec []byte) (string, []any, error) {
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(rec, &fields); err != nil {
		return "", nil, fmt.Errorf("aggregate: record is not a JSON object: %w", err)
	}
	rawKey, ok := fields[key]
	if !ok || isNull(rawKey) {
		return "", nil, fmt.Errorf("aggregate: record has no key field %q", key)
	}
	k, _, err := fieldString(rawKey)
	if err != nil || k == "" {
		return "", nil, fmt.Errorf("aggregate: record has an empty key field %q", key)
	}
	vals := make([]any, len(schema))
	for c, col := range schema {
		raw, ok := fields[col.Name]
		if !ok || isNull(raw) {
			continue
		}
		conv, err := converterFor(col.Type)
		if err != nil {
			return "", nil, err
		}
		v, err := conv(raw)
		if err != nil {
			return "", nil, fmt.Errorf("aggregate: field %s (%s): %w", col.Name, col.Type, err)
		}
		vals[c] = v
	}
	return k, vals, nil
}

// canonCheckAgainstOld checks Encode's result for rec against the
// appender path: the same decision, the same error text, the same key,
// and every written value the one the old converter produced. It returns
// whether Encode rejected, on purpose, a record the old path took (or
// rejected for another reason): see canonExplained.
func canonCheckAgainstOld(t *testing.T, schema []Column, key string, rec, out, gotKey []byte, err error) (diff bool) {
	t.Helper()
	oldKey, oldVals, oldErr := canonOld(schema, key, rec)
	if err != nil {
		if canonExplained(schema, key, rec, err) && (oldErr == nil || oldErr.Error() != err.Error()) {
			return true
		}
		require.Error(t, oldErr, "rejected %q: %v; the appender path took it", rec, err)
		if strings.HasPrefix(oldErr.Error(), "aggregate: record is not a JSON object") {
			require.True(t, strings.HasPrefix(err.Error(), "aggregate: record is not a JSON object"), "%q: %v", rec, err)
			return false
		}
		require.Equal(t, oldErr.Error(), err.Error(), "%q", rec)
		return false
	}
	require.NoError(t, oldErr, "accepted %q", rec)
	require.Equal(t, oldKey, string(gotKey))
	require.True(t, json.Valid(out), "%q", out)
	var got map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(out, &got), "%q", out)
	for i, col := range schema {
		raw, ok := got[col.Name]
		if oldVals[i] == nil {
			require.False(t, ok, "%s is absent or null", col.Name)
			continue
		}
		require.True(t, ok, "%s: %q", col.Name, out)
		require.NoError(t, canonSameValue(col, raw, oldVals[i]), "%s in %q", col.Name, rec)
	}
	return false
}

// canonExplained says whether err is a deliberate rejection of a value
// the appender path took: text that is not UTF-8, which DuckDB cannot
// store, or a time the appender refused (failing the whole batch) or
// stored as a wrapped or infinite date.
func canonExplained(schema []Column, key string, rec []byte, err error) bool {
	fields := map[string]json.RawMessage{}
	if json.Unmarshal(rec, &fields) != nil {
		return false
	}
	msg := err.Error()
	if msg == fmt.Sprintf("aggregate: record has a key field %q that is not valid UTF-8", key) {
		return !utf8.Valid(fields[key])
	}
	for _, col := range schema {
		prefix := fmt.Sprintf("aggregate: field %s (%s): ", col.Name, col.Type)
		if !strings.HasPrefix(msg, prefix) {
			continue
		}
		raw := fields[col.Name]
		reason := strings.TrimPrefix(msg, prefix)
		switch {
		case strings.HasPrefix(reason, "invalid UTF-8: "):
			return !utf8.Valid(raw)
		case strings.HasPrefix(reason, "not a timestamp: "), strings.HasPrefix(reason, "not a date: "):
			conv, _ := converterFor(col.Type)
			v, cerr := conv(raw)
			if cerr != nil {
				return false
			}
			tm := v.(time.Time)
			if canonBaseType(col.Type) == "DATE" {
				days := tm.Unix() / 86400
				return days < -canonMaxDays || days > canonMaxDays
			}
			return tm.Year() < -290307 || tm.Year() > 294246
		}
	}
	return false
}

var canonTimeText = regexp.MustCompile(`^(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})(?:T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{6}))?(\+00:00)?$`)

// canonParseText reads the time text Encode writes, independently of it.
func canonParseText(s string) (tm time.Time, clock, zone bool, err error) {
	m := canonTimeText.FindStringSubmatch(s)
	if m == nil {
		return tm, false, false, fmt.Errorf("bad time text %q", s)
	}
	n := make([]int, 8)
	for i := 1; i < 8; i++ {
		if m[i] != "" {
			n[i], _ = strconv.Atoi(m[i])
		}
	}
	tm = time.Date(n[1], time.Month(n[2]), n[3], n[4], n[5], n[6], n[7]*1000, time.UTC)
	if tm.Month() != time.Month(n[2]) || tm.Day() != n[3] || tm.Hour() != n[4] || tm.Minute() != n[5] || tm.Second() != n[6] {
		return tm, false, false, fmt.Errorf("time text %q out of range", s)
	}
	return tm, m[4] != "", m[8] != "", nil
}

// canonTextFloat reads a float Encode wrote.
func canonTextFloat(raw json.RawMessage) (float64, error) {
	switch string(raw) {
	case `"NaN"`:
		return math.NaN(), nil
	case `"Infinity"`:
		return math.Inf(1), nil
	case `"-Infinity"`:
		return math.Inf(-1), nil
	}
	return strconv.ParseFloat(string(raw), 64)
}

// canonSameValue says whether raw, written by Encode for col, is the
// value old the converter gave.
func canonSameValue(col Column, raw json.RawMessage, old any) error {
	text := func() (string, error) {
		var s string
		if len(raw) == 0 || raw[0] != '"' {
			return "", fmt.Errorf("want a string, got %s", raw)
		}
		return s, json.Unmarshal(raw, &s)
	}
	switch canonBaseType(col.Type) {
	case "DOUBLE", "FLOAT8":
		f, err := canonTextFloat(raw)
		if err != nil {
			return err
		}
		if o := old.(float64); math.Float64bits(f) != math.Float64bits(o) && !(math.IsNaN(f) && math.IsNaN(o)) {
			return fmt.Errorf("got %s, want %v", raw, o)
		}
		return nil
	case "REAL", "FLOAT", "FLOAT4":
		f, err := canonTextFloat(raw)
		if err != nil {
			return err
		}
		o := old.(float32)
		if float64(float32(f)) != f && !math.IsNaN(f) {
			return fmt.Errorf("%s is not exactly a float32", raw)
		}
		if math.Float32bits(float32(f)) != math.Float32bits(o) && !(math.IsNaN(f) && o != o) {
			return fmt.Errorf("got %s, want %v", raw, o)
		}
		return nil
	case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATETIME", "TIMESTAMP_US", "DATE":
		s, err := text()
		if err != nil {
			return err
		}
		tm, clock, zone, err := canonParseText(s)
		if err != nil {
			return err
		}
		o := old.(time.Time)
		switch base := canonBaseType(col.Type); {
		case base == "DATE":
			if clock || zone || !tm.Equal(o) {
				return fmt.Errorf("got %s, want %v", s, o)
			}
		case !clock || zone != (base == "TIMESTAMPTZ" || base == "TIMESTAMP WITH TIME ZONE") || tm.UnixMicro() != o.UnixMicro():
			return fmt.Errorf("got %s, want %v", s, o)
		}
		return nil
	case "DECIMAL", "NUMERIC":
		s, err := text()
		if err != nil {
			return err
		}
		o := old.(duckdb.Decimal)
		q := new(big.Int).Abs(o.Value).String()
		for len(q) <= int(o.Scale) {
			q = "0" + q
		}
		want := q
		if o.Scale > 0 {
			want = q[:len(q)-int(o.Scale)] + "." + q[len(q)-int(o.Scale):]
		}
		if o.Value.Sign() < 0 {
			want = "-" + want
		}
		if s != want {
			return fmt.Errorf("got %s, want %s", s, want)
		}
		return nil
	}
	var want string
	switch o := old.(type) {
	case string:
		s, err := text()
		if err != nil || s != o {
			return fmt.Errorf("got %s, want %q (%v)", raw, o, err)
		}
		return nil
	case bool:
		want = strconv.FormatBool(o)
	case int8, int16, int32, int64, uint8, uint16, uint32, uint64:
		want = fmt.Sprint(o)
	default:
		return fmt.Errorf("unexpected value %#v", old)
	}
	if string(raw) != want {
		return fmt.Errorf("got %s, want %s", raw, want)
	}
	return nil
}

// canonTestDB is an in-memory DuckDB whose connections are in UTC, as
// the aggregator's.
func canonTestDB(t testing.TB) *sql.DB {
	t.Helper()
	connector, err := duckdb.NewConnector("", func(execer driver.ExecerContext) error {
		_, err := execer.ExecContext(context.Background(), "SET TimeZone = 'UTC'", nil)
		return err
	})
	require.NoError(t, err)
	db := sql.OpenDB(connector)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// canonRoundTrip stores recs the old way (converters, Appender) and the
// new way (Encode, NDJSON, read_json with the schema's types) and checks
// the two tables hold the same values. Every record must be taken by
// both paths.
func canonRoundTrip(t *testing.T, schema []Column, key string, recs [][]byte) {
	t.Helper()
	ctx := t.Context()
	db := canonTestDB(t)
	conn, err := db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()

	defs := []string{"_id BIGINT", "_key VARCHAR"}
	readCols := []string{"'_id': 'BIGINT'", "'_key': 'VARCHAR'"}
	sel := []string{"_id", "_key"}
	for _, c := range schema {
		defs = append(defs, canonSQLIdent(c.Name)+" "+c.Type)
		readCols = append(readCols, canonSQLLiteral(c.Name)+": "+canonSQLLiteral(c.Type))
		sel = append(sel, canonSQLIdent(c.Name)+"::VARCHAR")
	}
	for _, table := range []string{"old", "new"} {
		_, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TABLE %s (%s)", table, strings.Join(defs, ", ")))
		require.NoError(t, err)
	}

	e, err := canonNewEncoder(schema, key)
	require.NoError(t, err)
	var lines []byte
	err = conn.Raw(func(dc any) error {
		app, err := duckdb.NewAppender(dc.(*duckdb.Conn), "", "main", "old")
		if err != nil {
			return err
		}
		for id, rec := range recs {
			oldKey, vals, oldErr := canonOld(schema, key, rec)
			require.NoError(t, oldErr, "%q", rec)
			row := []driver.Value{int64(id), oldKey}
			for _, v := range vals {
				row = append(row, v)
			}
			require.NoError(t, app.AppendRow(row...), "%q", rec)

			prefix := fmt.Sprintf(`{"_id":%d`, id)
			out, k, err := e.Encode([]byte(prefix), rec)
			require.NoError(t, err, "%q", rec)
			line := append([]byte(prefix+`,"_key":`), canonAppendString(nil, k)...)
			lines = append(append(lines, line...), out[len(prefix):]...)
			lines = append(lines, '\n')
		}
		return app.Close()
	})
	require.NoError(t, err)

	path := filepath.Join(t.TempDir(), "records.ndjson")
	require.NoError(t, os.WriteFile(path, lines, 0o600))
	_, err = conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO new SELECT * FROM read_json(%s, format='newline_delimited', columns={%s})",
		canonSQLLiteral(path), strings.Join(readCols, ", ")))
	require.NoError(t, err)

	read := func(table string) [][]sql.NullString {
		rows, err := conn.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s ORDER BY _id", strings.Join(sel, ", "), table))
		require.NoError(t, err)
		defer rows.Close()
		var all [][]sql.NullString
		for rows.Next() {
			row := make([]sql.NullString, len(sel))
			ptrs := make([]any, len(sel))
			for i := range row {
				ptrs[i] = &row[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			all = append(all, row)
		}
		require.NoError(t, rows.Err())
		return all
	}
	oldRows, newRows := read("old"), read("new")
	require.Len(t, newRows, len(recs))
	require.Len(t, oldRows, len(recs))
	for r := range oldRows {
		for c := range sel {
			o, n := oldRows[r][c], newRows[r][c]
			if c >= 2 && canonBaseType(schema[c-2].Type) == "JSON" && o.Valid && n.Valid {
				// The appender wrote json.Marshal's text, which escapes
				// <, >, & and U+2028/9; DuckDB writes them as they are.
				o.String = canonHTMLUnescape.Replace(o.String)
			}
			require.Equal(t, o, n, "record %q column %s", recs[r], sel[c])
		}
	}
}

func canonSQLIdent(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func canonSQLLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

var canonHTMLUnescape = strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&", `\u2028`, "\u2028", `\u2029`, "\u2029")

func TestCanonRoundTripDuckDB(t *testing.T) {
	t.Parallel()
	var recs [][]byte
	for _, tc := range canonValueCases {
		if tc.err == "" {
			recs = append(recs, []byte(`{"k":"key","`+tc.col+`":`+tc.in+`}`))
		}
	}
	for _, tc := range canonRecordCases {
		if tc.err == "" {
			recs = append(recs, []byte(tc.rec))
		}
	}
	recs = append(recs, canonAcceptedSeeds(t)...)
	// A few values DuckDB could read differently from Go.
	for _, v := range []string{
		`"d":2.2250738585072011e-308`, `"d":2.4703282292062327e-324`, `"d":2.4703282292062328e-324`,
		`"d":1.00000000000000011102230246251565404236316680908203125`,
		`"d":1.00000000000000011102230246251565404236316680908203125000000001`,
		`"d":0.1000000000000000055511151231257827021181583404541015625`, `"d":18446744073709551615`,
		`"d":-9223372036854775809`, `"d":1e23`, `"d":8.98846567431158e307`, `"d":"1e-320"`,
		`"r":3.4028235677973366e38`, `"r":1.401298464324817e-45`, `"r":7.006492321624085e-46`, `"r":"-0"`,
		`"j":"<tag a=\"1\"> & \u2028 \u2029 \u0001"`, `"j":{"a":"<>"}`, `"s":"\u0000\u0000"`,
		`"tz":"0000-01-01T00:00:00Z"`, `"ts":"0000-01-01T00:00:00.000001+00:01"`, `"dt":-1e14`,
	} {
		recs = append(recs, []byte(`{"k":"key",`+v+`}`))
	}
	canonRoundTrip(t, canonTestSchema, "k", recs)
}

func TestCanonRoundTripShop(t *testing.T) {
	t.Parallel()
	recs := [][]byte{canonShopRecord}
	for i := range 200 {
		recs = append(recs, fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-%d","amount":%d.%02d,"currency":"EUR","country":"DE","ts":"2026-10-%02dT%02d:%02d:%02d.%dZ","email_hash":"h%x","amount_usd":%g}`,
			i, i%7, i, i%100, 1+i%28, i%24, i%60, (i*7)%60, i*12345, i*31, float64(i)*1.08))
	}
	canonRoundTrip(t, canonShopSchema, "order_id", recs)
}

func BenchmarkCanonEncode(b *testing.B) {
	e, err := canonNewEncoder(canonShopSchema, "order_id")
	require.NoError(b, err)
	prefix := []byte(`{"_jf_seq":12,"_jf_idx":0,"_jf_at":1700000000000000`)
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(canonShopRecord)))
	cpu := canonThreadCPU(b)
	for b.Loop() {
		out, _, err := e.Encode(append(dst[:0], prefix...), canonShopRecord)
		if err != nil {
			b.Fatal(err)
		}
		dst = out
	}
	cpu.report(b)
}

// canonCPU measures the benchmark goroutine's thread CPU time, which
// other processes on a shared machine do not inflate as they do ns/op.
type canonCPU struct{ start time.Duration }

func canonThreadCPU(b *testing.B) canonCPU {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return canonCPU{canonThreadTime(b)}
}

func (c canonCPU) report(b *testing.B) {
	b.ReportMetric(float64(canonThreadTime(b)-c.start)/float64(b.N), "cpu-ns/op")
}

func canonThreadTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	require.NoError(b, syscall.Getrusage(1, &ru)) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCanonBaseline is the decode it replaces: json.Unmarshal into a
// map and the converters.
func BenchmarkCanonBaseline(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(canonShopRecord)))
	cpu := canonThreadCPU(b)
	for b.Loop() {
		if _, _, err := canonOld(canonShopSchema, "order_id", canonShopRecord); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

func TestCanonEncodeKeepsBuffersSmall(t *testing.T) {
	t.Parallel()
	e, err := canonNewEncoder(canonTestSchema, "k")
	require.NoError(t, err)
	huge := `"` + strings.Repeat(`\u00e9`, 1<<18) + `"`
	out, key, err := e.Encode(nil, []byte(`{"k":`+huge+`,"s":`+huge+`}`))
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("é", 1<<18), string(key))
	require.Len(t, out, len(`,"s":""}`)+2<<18)
	_, key, err = e.Encode(nil, []byte(`{"k":"\u0061"}`))
	require.NoError(t, err)
	require.Equal(t, "a", string(key))
	require.LessOrEqual(t, cap(e.scratch)+cap(e.keyBuf)+cap(e.nameBuf), canonKeepBuffers)
}
