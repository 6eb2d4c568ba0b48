package aggregate

import (
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestKeySetMatchesAMap inserts, looks up and deletes random keys through
// growth, with colliding home slots, and compares with a Go map.
func TestKeySetMatchesAMap(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	s := newKeySet()
	want := map[keyHash]position{}
	var keys []keyHash
	for i := range 20000 {
		switch op := r.IntN(10); {
		case op < 6 || len(keys) == 0:
			h := hashKey([]byte("k" + strconv.Itoa(r.IntN(30000))))
			if i%7 == 0 {
				// Same home slot as an existing key: a probe chain.
				if len(keys) > 0 {
					h = keyHash{hi: keys[0].hi, lo: keys[0].lo + uint64(1+r.IntN(3))<<40}
				}
			}
			pos := position{seq: uint64(i)}
			got, found := s.Insert(keyEntry{h: h, pos: pos})
			if w, ok := want[h]; ok {
				require.True(t, found)
				require.Equal(t, w, got)
			} else {
				require.False(t, found)
				want[h] = pos
				keys = append(keys, h)
			}
		case op < 8:
			k := keys[r.IntN(len(keys))]
			s.Delete(k)
			delete(want, k)
		default:
			k := keys[r.IntN(len(keys))]
			pos, ok := s.Get(k)
			w, wok := want[k]
			require.Equal(t, wok, ok)
			require.Equal(t, w, pos)
		}
		require.Equal(t, len(want), s.Len())
	}
	for k, w := range want {
		pos, ok := s.Get(k)
		require.True(t, ok)
		require.Equal(t, w, pos)
	}
}

func TestKeyFileCutsATornEntry(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "keys.bin")
	kf, err := openKeyFile(path, func(keyEntry) { t.Fatal("empty file has entries") })
	require.NoError(t, err)
	a := keyEntry{h: hashKey([]byte("a")), pos: position{seq: 7, idx: 3}}
	require.NoError(t, kf.Append([]keyEntry{a}, true))
	_, err = kf.f.WriteAt([]byte{1, 2, 3}, kf.size) // a crash mid-append
	require.NoError(t, err)
	require.NoError(t, kf.Close())
	var got []keyEntry
	kf, err = openKeyFile(path, func(e keyEntry) { got = append(got, e) })
	require.NoError(t, err)
	require.Equal(t, []keyEntry{a}, got)
	b := keyEntry{h: hashKey([]byte("b")), pos: position{seq: 8}}
	require.NoError(t, kf.Append([]keyEntry{b}, true))
	require.NoError(t, kf.Close())
	got = nil
	kf, err = openKeyFile(path, func(e keyEntry) { got = append(got, e) })
	require.NoError(t, err)
	require.Equal(t, []keyEntry{a, b}, got)
	require.NoError(t, kf.Close())
}
