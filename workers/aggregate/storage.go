package aggregate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// When the data dir refuses writes, every batch would fail and burn one
// of its messages' deliveries until they are dead-lettered, though
// nothing is wrong with them. So the aggregator pauses the worker that
// feeds it (a paused worker holds no messages: they wait in the stream
// without being delivered), probes the data dir with backoff, and resumes
// the worker once a write works again.

const (
	storageProbeSize = 1 << 20 // a write the size of a commit or two
	storageRetryMin  = 500 * time.Millisecond
	storageRetryMax  = 30 * time.Second
)

// SetFeeder gives the aggregator the pause and resume of the worker that
// feeds it (workers.Worker.Pause and Resume). Call it before Start.
func (a *Aggregator) SetFeeder(pause, resume func()) {
	a.storeMu.Lock()
	defer a.storeMu.Unlock()
	a.pauseFeed, a.resumeFeed = pause, resume
}

// StorageError is the write error the aggregator is waiting out, nil
// while the data dir takes writes.
func (a *Aggregator) StorageError() error {
	a.storeMu.Lock()
	defer a.storeMu.Unlock()
	return a.storeErr
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

// storageFailed pauses intake after a commit failed on a write; it returns
// the error for the runtime, which naks the batch and reports it.
func (a *Aggregator) storageFailed(err error) error {
	err = fmt.Errorf("%w (records stay in the stream until it works again): %w", ErrDataDirUnwritable, err)
	a.storeMu.Lock()
	first := a.storeErr == nil
	a.storeErr = err
	a.storeFails++
	a.storeNext = time.Now().Add(backoff(storageRetryMin, storageRetryMax, a.storeFails))
	pause := a.pauseFeed
	a.storeMu.Unlock()
	if first {
		a.log.Error().Err(err).Msg("data dir refuses writes; pausing intake and retrying with backoff")
	}
	if pause != nil {
		pause() // again if someone resumed the worker meanwhile; a no-op if paused
	}
	return workers.RetryAfter(storageRetryMin, err)
}

// storageWorked notes a committed batch: the outage, if any, is over.
func (a *Aggregator) storageWorked() {
	a.storeMu.Lock()
	a.storeFails = 0
	a.storeMu.Unlock()
}

// probeStorage runs on the flusher's ticks while intake is paused: one
// probe write when the backoff allows, and the worker resumed when it
// works. It reports whether the data dir is (still) refusing writes.
func (a *Aggregator) probeStorage(now time.Time) bool {
	a.storeMu.Lock()
	down, due := a.storeErr != nil, now.After(a.storeNext)
	a.storeMu.Unlock()
	if !down || !due {
		return down
	}
	err := probeWrite(filepath.Dir(marts.StateFile(a.cfg.DataDir, a.cfg.Dataset.Name)))
	a.storeMu.Lock()
	defer a.storeMu.Unlock()
	if err != nil {
		a.storeFails++
		delay := backoff(storageRetryMin, storageRetryMax, a.storeFails)
		a.storeNext = now.Add(delay)
		a.log.Warn().Err(err).Dur("retry_in", delay).Msg("data dir still refuses writes")
		return true
	}
	a.log.Info().Msg("data dir takes writes again; resuming intake")
	a.storeErr = nil
	if a.resumeFeed != nil {
		a.resumeFeed()
	}
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
