package subjects_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/subjects"
)

func TestLookupKey(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"USD", "USD"},
		{"dev-01_a=", "dev-01_a="},
		{"", "b64.="},
		{"a.b", "b64.YS5i"},
		{"São Paulo", "b64.U8OjbyBQYXVsbw"},
		{"b64.x", "b64.YjY0Lng"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got := subjects.LookupKey(tc.in)
			require.Equal(t, tc.want, got)
			back, ok := subjects.ParseLookupKey(got)
			require.True(t, ok)
			require.Equal(t, tc.in, back)
		})
	}
}

func FuzzLookupKey(f *testing.F) {
	for _, s := range []string{"USD", "", "a.b", "b64.", "*", ">", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k := subjects.LookupKey(s)
		for i := 0; i < len(k); i++ {
			c := k[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=' || c == '.'
			require.True(t, ok, "key %q has %q", k, c)
		}
		back, ok := subjects.ParseLookupKey(k)
		require.True(t, ok)
		require.Equal(t, s, back)
	})
}

func TestLookupBucketConfig(t *testing.T) {
	t.Parallel()
	cfg := subjects.LookupBucketConfig("fx", 0)
	require.Equal(t, "jf-lookup-fx", cfg.Bucket)
	require.Equal(t, 1, cfg.Replicas)
	require.Equal(t, "jf-landing", subjects.LandingBucketConfig(3).Bucket)
}
