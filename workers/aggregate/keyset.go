package aggregate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/zeebo/xxh3"
)

// keyHash is the 128-bit xxh3 hash of a record's key text. At 128 bits two
// keys of one dataset collide with a probability near n²/2^129, nil for any
// n a pipeline reaches, so a hash match is taken as the same key.
type keyHash struct{ hi, lo uint64 }

func hashKey(key []byte) keyHash {
	h := xxh3.Hash128(key)
	if h.Hi == 0 && h.Lo == 0 {
		h.Lo = 1 // the zero hash marks an empty slot
	}
	return keyHash{hi: h.Hi, lo: h.Lo}
}

// position is where a record was committed from: the stream sequence of
// its message and its index in the message (0 in record mode). A key seen
// again at the same position is its message redelivered, not a duplicate.
type position struct {
	seq uint64
	idx uint32
}

// keyEntry is one committed key (or one dropped duplicate) as it is kept
// in memory and in a partition's keys file: 32 bytes.
type keyEntry struct {
	h   keyHash
	pos position
}

const keyEntrySize = 32

func (e keyEntry) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], e.h.hi)
	binary.LittleEndian.PutUint64(b[8:], e.h.lo)
	binary.LittleEndian.PutUint64(b[16:], e.pos.seq)
	binary.LittleEndian.PutUint32(b[24:], e.pos.idx)
	binary.LittleEndian.PutUint32(b[28:], 0)
}

func getKeyEntry(b []byte) keyEntry {
	return keyEntry{
		h:   keyHash{hi: binary.LittleEndian.Uint64(b[0:]), lo: binary.LittleEndian.Uint64(b[8:])},
		pos: position{seq: binary.LittleEndian.Uint64(b[16:]), idx: binary.LittleEndian.Uint32(b[24:])},
	}
}

// keySet holds every key a partition committed, with the position that
// committed it: an open-addressing table with linear probing, because a Go
// map of the same entries costs about twice the memory. Its memory is
// about 45 bytes per key on average (32-byte slots, load between 3/8 and
// 3/4). Not safe for concurrent use.
type keySet struct {
	slots []keyEntry // a zero hash is an empty slot
	n     int
}

const keySetMinSlots = 1024

func newKeySet() *keySet {
	return &keySet{slots: make([]keyEntry, keySetMinSlots)}
}

// Len is the number of keys.
func (s *keySet) Len() int { return s.n }

// Bytes is the memory the table holds.
func (s *keySet) Bytes() int64 { return int64(len(s.slots)) * keyEntrySize }

func (s *keySet) home(h keyHash) int { return int(h.lo^h.hi>>7) & (len(s.slots) - 1) }

func (s *keySet) slot(h keyHash) int {
	mask := len(s.slots) - 1
	i := s.home(h)
	for {
		if s.slots[i].h == h || s.slots[i].h == (keyHash{}) {
			return i
		}
		i = (i + 1) & mask
	}
}

// Get returns the position that committed h, if it was.
func (s *keySet) Get(h keyHash) (position, bool) {
	e := s.slots[s.slot(h)]
	return e.pos, e.h == h
}

// Add records e unless its key is there already; it reports whether it
// added it. Adding a key again keeps the first position: re-reading a
// journal after a crash must not move a key's position.
func (s *keySet) Add(e keyEntry) bool {
	i := s.slot(e.h)
	if s.slots[i].h == e.h {
		return false
	}
	s.slots[i] = e
	s.n++
	if s.n*4 >= len(s.slots)*3 {
		s.grow()
	}
	return true
}

// Insert adds e unless its key is there, in one probe; it returns the
// position that committed the key and whether it was there before.
func (s *keySet) Insert(e keyEntry) (position, bool) {
	i := s.slot(e.h)
	if s.slots[i].h == e.h {
		return s.slots[i].pos, true
	}
	s.slots[i] = e
	s.n++
	if s.n*4 >= len(s.slots)*3 {
		s.grow()
	}
	return e.pos, false
}

// Delete removes h (a commit that failed takes its keys back), shifting
// the entries after it back so every probe still finds its key.
func (s *keySet) Delete(h keyHash) {
	mask := len(s.slots) - 1
	i := s.slot(h)
	if s.slots[i].h != h {
		return
	}
	s.n--
	for j := (i + 1) & mask; s.slots[j].h != (keyHash{}); j = (j + 1) & mask {
		// The entry at j may move to the hole at i unless its home slot
		// lies cyclically after i, up to j.
		k := s.home(s.slots[j].h)
		if (i <= j && (k <= i || k > j)) || (i > j && k <= i && k > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = keyEntry{}
}

func (s *keySet) grow() {
	old := s.slots
	s.slots = make([]keyEntry, 2*len(old))
	for _, e := range old {
		if e.h != (keyHash{}) {
			s.slots[s.slot(e.h)] = e
		}
	}
}

// keyFile is an append-only file of key entries. A torn last entry (a
// crash mid-write) is ignored when it is read and overwritten by the next
// append.
type keyFile struct {
	path string
	f    *os.File
	size int64
}

// openKeyFile opens (creating) path and calls each for every whole entry.
func openKeyFile(path string, eachFunc func(keyEntry)) (*keyFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 64*keyEntrySize<<10)
	var size int64
	for {
		n, err := io.ReadFull(f, buf)
		whole := n - n%keyEntrySize
		for i := 0; i < whole; i += keyEntrySize {
			eachFunc(getKeyEntry(buf[i:]))
		}
		size += int64(whole)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return &keyFile{path: path, f: f, size: size}, nil
}

// Append writes entries and, with sync, makes them durable.
func (k *keyFile) Append(entries []keyEntry, sync bool) error {
	if len(entries) == 0 {
		return nil
	}
	buf := make([]byte, len(entries)*keyEntrySize)
	for i, e := range entries {
		e.put(buf[i*keyEntrySize:])
	}
	if _, err := k.f.WriteAt(buf, k.size); err != nil {
		return fmt.Errorf("append to %s: %w", k.path, err)
	}
	k.size += int64(len(buf))
	if sync {
		if err := k.f.Sync(); err != nil {
			return fmt.Errorf("sync %s: %w", k.path, err)
		}
	}
	return nil
}

func (k *keyFile) Close() error { return k.f.Close() }
