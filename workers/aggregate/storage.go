package aggregate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// When the data dir refuses writes, every batch would fail and burn one
// of its messages' deliveries until they are dead-lettered, though
// nothing is wrong with them. So the intake pauses the workers that feed
// it (a paused worker holds no messages: they wait in the stream without
// being delivered), probes the data dir with backoff, and resumes the
// workers once a write works again.

const (
	storageProbeSize = 1 << 20 // a write the size of a commit or two
	storageRetryMin  = 500 * time.Millisecond
	storageRetryMax  = 30 * time.Second
)

// storageState is the outage being waited out, if any.
type storageState struct {
	mu    sync.Mutex
	err   error
	fails int
	next  time.Time
}

// isStorageErr reports whether err is the disk refusing a write rather
// than something about the records. DuckDB reports I/O errors as text.
func isStorageErr(err error) bool {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EFBIG, syscall.EROFS, syscall.EIO, syscall.EDQUOT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	s := err.Error()
	for _, text := range []string{"No space left on device", "File too large", "Read-only file system", "Disk quota exceeded", "Input/output error", "Could not write file"} {
		if strings.Contains(s, text) {
			return true
		}
	}
	return false
}

func (in *Intake) eachFeeder(eachFunc func(feeder)) {
	in.mu.Lock()
	fs := make([]feeder, 0, len(in.feeders))
	for _, fd := range in.feeders {
		fs = append(fs, fd)
	}
	in.mu.Unlock()
	for _, fd := range fs {
		eachFunc(fd)
	}
}

// storageFailed pauses intake after a write failed; it returns the error
// for the runtime, which naks the batch and reports it.
func (in *Intake) storageFailed(err error) error {
	err = fmt.Errorf("%w (records stay in the stream until it works again): %w", ErrDataDirUnwritable, err)
	st := &in.storage
	st.mu.Lock()
	first := st.err == nil
	st.err = err
	if first {
		// Later failures of the other partitions' batches are the same
		// outage; only the probes back off further.
		st.fails = 1
		st.next = time.Now().Add(storageRetryMin)
	}
	st.mu.Unlock()
	if first {
		in.log.Error().Err(err).Msg("data dir refuses writes; pausing intake and retrying with backoff")
	}
	// Again if someone resumed a worker meanwhile; a no-op if paused.
	in.eachFeeder(func(fd feeder) {
		if fd.pauseFunc != nil {
			fd.pauseFunc()
		}
	})
	return workers.RetryAfter(storageRetryMin, err)
}

// storageWorked notes a committed batch: the outage, if any, is over.
func (in *Intake) storageWorked() {
	in.storage.mu.Lock()
	in.storage.fails = 0
	in.storage.mu.Unlock()
}

// probeStorage runs on the flusher's ticks while intake is paused: one
// probe write when the backoff allows, and the workers resumed when it
// works. It reports whether the data dir is (still) refusing writes.
func (in *Intake) probeStorage(now time.Time) bool {
	st := &in.storage
	st.mu.Lock()
	down, due := st.err != nil, now.After(st.next)
	st.mu.Unlock()
	if !down || !due {
		return down
	}
	err := probeWrite(marts.DatasetStateDir(in.cfg.DataDir, in.cfg.Dataset.Name))
	st.mu.Lock()
	if err != nil {
		st.fails++
		delay := backoff(storageRetryMin, storageRetryMax, st.fails)
		st.next = now.Add(delay)
		st.mu.Unlock()
		in.log.Warn().Err(err).Dur("retry_in", delay).Msg("data dir still refuses writes")
		return true
	}
	st.err = nil
	st.mu.Unlock()
	in.log.Info().Msg("data dir takes writes again; resuming intake")
	in.eachFeeder(func(fd feeder) {
		if fd.resumeFunc != nil {
			fd.resumeFunc()
		}
	})
	return false
}

func probeWrite(dir string) error {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, storageProbeSize))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// backoff is min doubled per attempt after the first, capped at max.
func backoff(minD, maxD time.Duration, attempt int) time.Duration {
	d := minD
	for i := 1; i < attempt && d < maxD; i++ {
		d *= 2
	}
	return min(d, maxD)
}

// ErrOldState is returned when a data dir holds a dataset's aggregate
// state as an earlier jetfleet kept it (DuckDB files per partition).
var ErrOldState = errors.New("aggregate: the data dir holds state of an earlier jetfleet")

// checkOldState refuses a data dir whose aggregate state for dataset is in
// the layout of jetfleet before 2026-12: its records are in DuckDB files
// this version does not read.
func checkOldState(dataDir, dataset string) error {
	pattern := filepath.Join(dataDir, marts.StateDir, dataset) + "*.duckdb"
	old, err := filepath.Glob(pattern)
	if err != nil || len(old) == 0 {
		return err
	}
	return fmt.Errorf("%w: %s (and %d more): see \"Upgrading a data dir\" in docs/scale-out.md", ErrOldState, old[0], len(old)-1)
}
