package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // timezones named in a pipeline file work on hosts without a zoneinfo database
	"unicode/utf8"
)

// Normalizer names a string normalisation a rule or transform may apply.
type Normalizer string

// The normalisations a pipeline file can name.
const (
	NormTrim  Normalizer = "trim"
	NormUpper Normalizer = "upper"
	NormLower Normalizer = "lower"
)

var normalizers = []string{string(NormTrim), string(NormUpper), string(NormLower)}

// Normalize applies ns to s in order. Trim removes Unicode white space at
// both ends; upper and lower use Unicode simple case mapping.
func Normalize(s string, ns []Normalizer) string {
	for _, n := range ns {
		switch n {
		case NormTrim:
			s = strings.TrimSpace(s)
		case NormUpper:
			s = strings.ToUpper(s)
		case NormLower:
			s = strings.ToLower(s)
		}
	}
	return s
}

// AppendNormalize is Normalize that writes into dst when a normalisation
// changes case, so that checking a normalised value allocates nothing; it
// returns the normalised text, which may view s or dst, and dst.
func AppendNormalize(dst []byte, s string, ns []Normalizer) (string, []byte) {
	for _, n := range ns {
		switch n {
		case NormTrim:
			s = strings.TrimSpace(s)
		case NormUpper, NormLower:
			if !isASCII(s) {
				if n == NormUpper {
					s = strings.ToUpper(s)
				} else {
					s = strings.ToLower(s)
				}
				continue
			}
			// In place when s views dst already: each byte is read
			// before it is written.
			dst = dst[:0]
			for i := 0; i < len(s); i++ {
				c := s[i]
				if n == NormUpper && c >= 'a' && c <= 'z' {
					c -= 'a' - 'A'
				} else if n == NormLower && c >= 'A' && c <= 'Z' {
					c += 'a' - 'A'
				}
				dst = append(dst, c)
			}
			s = view(dst)
		}
	}
	return s, dst
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Named timestamp formats. Any other format string is a Go reference
// layout (it must contain 2006, the reference year).
const (
	FormatRFC3339  = "rfc3339"  // 2026-10-01T10:00:00Z or +02:00; offset required
	FormatDate     = "date"     // 2026-10-01, midnight in the timezone
	FormatDateTime = "datetime" // 2026-10-01 10:00:00 in the timezone
	FormatUnix     = "unix"     // seconds since the epoch, number or numeric string
	FormatUnixMS   = "unix_ms"  // milliseconds since the epoch
)

var namedFormats = map[string]string{
	FormatRFC3339:  time.RFC3339Nano,
	FormatDate:     "2006-01-02",
	FormatDateTime: "2006-01-02 15:04:05.999999999",
}

// TimeFormats parses timestamps in a list of formats, first match wins.
type TimeFormats struct {
	Formats  []string
	Location *time.Location // for layouts without an offset; default UTC
}

func checkTimeFormats(formats []string) error {
	for _, f := range formats {
		if _, ok := namedFormats[f]; ok || f == FormatUnix || f == FormatUnixMS {
			continue
		}
		if !strings.Contains(f, "2006") {
			return fmt.Errorf("format %q is neither rfc3339, date, datetime, unix, unix_ms nor a Go layout containing 2006", f)
		}
	}
	return nil
}

// Parse reads v, a string or (for unix formats) a number, as a time.
func (tf TimeFormats) Parse(v any) (time.Time, error) {
	val := ValueOf(v)
	if t, ok := tf.ParseValue(val); ok {
		return t, nil
	}
	return time.Time{}, errors.New(tf.ErrorText(val))
}

func (tf TimeFormats) formats() []string {
	if len(tf.Formats) == 0 {
		return rfc3339Only
	}
	return tf.Formats
}

var rfc3339Only = []string{FormatRFC3339}

// ParseValue reads v as Parse does, reporting whether it is a time in one
// of the formats.
func (tf TimeFormats) ParseValue(v Value) (time.Time, bool) {
	loc := tf.Location
	if loc == nil {
		loc = time.UTC
	}
	for _, f := range tf.formats() {
		if t, ok := parseOne(f, v, loc); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// ErrorText is the error of Parse for a value ParseValue rejects.
func (tf TimeFormats) ErrorText(v Value) string {
	return v.Describe() + " is not a timestamp in format " + strings.Join(tf.formats(), " or ")
}

func parseOne(format string, v Value, loc *time.Location) (time.Time, bool) {
	if format == FormatUnix || format == FormatUnixMS {
		f, ok := v.Float()
		if !ok && v.Kind() == KindString {
			f, ok = parseFloat(strings.TrimSpace(v.Str()))
		}
		// Beyond ±1e11 s (year ~5000) a "unix" value is a unit mistake.
		if !ok || (format == FormatUnix && (f > 1e11 || f < -1e11)) || (format == FormatUnixMS && (f > 1e14 || f < -1e14)) {
			return time.Time{}, false
		}
		if format == FormatUnixMS {
			return time.UnixMilli(int64(f)).UTC(), true
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).UTC(), true
	}
	if v.Kind() != KindString {
		return time.Time{}, false
	}
	s := v.Str()
	if format == FormatRFC3339 {
		// Go accepts a lower-case t/z and some lenient forms; RFC 3339 with
		// an offset is what the spec promises, so insist on it. A string
		// too short for one is not even tried (time.Parse's error costs).
		if len(s) < 20 {
			return time.Time{}, false
		}
		if t, ok := parseRFC3339(s); ok {
			return t, true
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		return t, err == nil
	}
	layout := format
	if l, named := namedFormats[format]; named {
		layout = l
	}
	t, err := time.ParseInLocation(layout, s, loc)
	return t, err == nil
}

// FormatTime is how steps write timestamps: UTC RFC 3339, with fractional
// seconds only when there are any.
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
