package subjects

import (
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestFitDeadLetter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		body  string
		limit int64
		want  string
	}{
		{"fits", "abcdef", 200, "abcdef"},
		{"no limit", "abcdef", 0, "abcdef"},
		{"cut", "abcde" + strings.Repeat("z", 100), 0, ""}, // limit set below from the header size
		{"cut before a split rune", "aaaaé" + strings.Repeat("z", 100), 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &nats.Msg{Subject: "jf.dlq.validate.orders", Data: []byte(tc.body), Header: nats.Header{}}
			m.Header.Set(HeaderReason, "bad")
			limit := tc.limit
			if tc.want == "" {
				// Room for the headers with the truncation marks and 5 bytes.
				probe := &nats.Msg{Subject: m.Subject, Header: nats.Header{}}
				probe.Header.Set(HeaderReason, "bad")
				probe.Header.Set(HeaderTruncated, "true")
				probe.Header.Set(HeaderOrigSize, strconv.Itoa(len(tc.body)))
				limit = int64(probe.Size()-len(probe.Subject)) + 5
			}
			cut := FitDeadLetter(m, limit)
			size := int64(m.Size() - len(m.Subject))
			if tc.want != "" {
				require.False(t, cut)
				require.Equal(t, tc.want, string(m.Data))
				require.Empty(t, m.Header.Get(HeaderTruncated))
				return
			}
			require.True(t, cut)
			require.LessOrEqual(t, size, limit)
			require.Equal(t, "true", m.Header.Get(HeaderTruncated))
			require.Equal(t, strconv.Itoa(len(tc.body)), m.Header.Get(HeaderOrigSize))
			if tc.name == "cut" {
				require.Equal(t, "abcde", string(m.Data))
			} else {
				require.Equal(t, "aaaa", string(m.Data), "é would be split at byte 5: cut before it")
			}
		})
	}
}
