// Package nativemem reads and tunes the C allocators in the process.
// DuckDB allocates through its own copy of jemalloc (symbols prefixed
// duckdb_je_, linked in where the bindings build it, as on Linux); other C
// code goes through the libc's malloc. duckdb_memory() accounts only for
// DuckDB's buffer-managed memory, so these figures are the only view of
// what its operators allocate and of the pages the allocator keeps after
// they are freed.
package nativemem

/*
#include <stdlib.h> // defines __GLIBC__ where glibc is the libc
#include <stdint.h>
#include <stdbool.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

// Weak: a build whose DuckDB has no jemalloc links, and sees NULL.
extern int duckdb_je_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

static int jf_je_stats(size_t *allocated, size_t *resident, size_t *retained) {
	if (duckdb_je_mallctl == NULL) return 0;
	// Stats are a snapshot taken when the epoch advances.
	uint64_t epoch = 1;
	size_t len = sizeof(epoch);
	if (duckdb_je_mallctl("epoch", &epoch, &len, &epoch, len) != 0) return 0;
	len = sizeof(size_t);
	if (duckdb_je_mallctl("stats.allocated", allocated, &len, NULL, 0) != 0) return 0;
	if (duckdb_je_mallctl("stats.resident", resident, &len, NULL, 0) != 0) return 0;
	if (duckdb_je_mallctl("stats.retained", retained, &len, NULL, 0) != 0) return 0;
	return 1;
}

// Arena 4096 is MALLCTL_ARENAS_ALL: every arena.
static int jf_je_decay(void) {
	if (duckdb_je_mallctl == NULL) return 0;
	return duckdb_je_mallctl("arena.4096.decay", NULL, NULL, NULL, 0);
}

static int jf_libc_stats(size_t *in_use, size_t *free_bytes) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	struct mallinfo2 m = mallinfo2();
	*in_use = m.uordblks + m.hblkhd;
	*free_bytes = m.fordblks;
	return 1;
#else
	return 0;
#endif
}
*/
import "C"

import "fmt"

// Stats are the C allocators' figures at one moment, in bytes.
type Stats struct {
	// DuckDB's jemalloc: Allocated is what DuckDB holds (its buffers,
	// operators' state, catalog); Resident is the allocator's resident
	// pages, Allocated plus fragmentation, metadata and dirty pages freed
	// and not yet purged. HaveDuckDB is false where DuckDB was built
	// without jemalloc.
	HaveDuckDB      bool
	DuckDBAllocated int64
	DuckDBResident  int64
	DuckDBRetained  int64 // virtual, not resident: kept mapped for reuse
	// The libc's malloc (glibc): what other C code holds, and what its
	// free lists keep. HaveLibc is false where it does not say.
	HaveLibc            bool
	LibcInUse, LibcFree int64
}

// Dirty is what DuckDB's allocator keeps resident beyond what is
// allocated from it: freed pages awaiting their decay, and fragmentation.
func (s Stats) Dirty() int64 { return max(0, s.DuckDBResident-s.DuckDBAllocated) }

// Read returns the allocators' figures.
func Read() Stats {
	var s Stats
	var allocated, resident, retained C.size_t
	if C.jf_je_stats(&allocated, &resident, &retained) == 1 {
		s.HaveDuckDB = true
		s.DuckDBAllocated = int64(allocated)
		s.DuckDBResident, s.DuckDBRetained = int64(resident), int64(retained)
	}
	var inUse, free C.size_t
	if C.jf_libc_stats(&inUse, &free) == 1 {
		s.HaveLibc = true
		s.LibcInUse, s.LibcFree = int64(inUse), int64(free)
	}
	return s
}

// Decay makes DuckDB's allocator return the dirty pages whose decay time
// (jemalloc's dirty_decay_ms, 1s as DuckDB configures it) has passed.
// jemalloc decays an arena's pages only when that arena allocates again,
// unless it runs background threads, which DuckDB leaves off: an arena a
// burst of work used and that then idles (a database closed, a thread
// pool that went quiet) keeps its pages resident indefinitely. Decay is
// cheap when there is little to return. It is a no-op without jemalloc.
func Decay() error {
	if rc := C.jf_je_decay(); rc != 0 {
		return fmt.Errorf("jemalloc arena decay: error %d", int(rc))
	}
	return nil
}
