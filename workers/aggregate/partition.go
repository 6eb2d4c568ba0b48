package aggregate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/marts"
	"github.com/jetfleet/jetfleet/workers"
)

// partition is the intake of one key partition of the clean stage: it
// de-duplicates the partition's keys and journals the new records until
// the lake holds them. A key always reaches the same partition, so its
// de-duplication is global. Its state (journal, keys, progress) lives in
// its own directory, so it can move between replicas sharing a data dir.
type partition struct {
	in  *Intake
	p   int
	dir string
	log zerolog.Logger

	// encMu serializes the encoder and the line buffer; one worker feeds a
	// partition, so it is never contended in practice.
	encMu sync.Mutex
	enc   *canonEncoder
	lines []byte
	cands []candidate

	mu         sync.Mutex // the state below; held by a commit and by the lake flusher's steps
	keys       *keySet
	dups       map[keyEntry]struct{}
	keyFile    *keyFile
	dupFile    *keyFile
	unlockFunc func()
	mark       *os.File   // the committed mark (marts.CommittedMarkFile)
	newKeys    []keyEntry // committed since the key files were last appended to
	newDups    []keyEntry
	j          *journal
	pending    int64 // records in journal segments not in the lake
	maxLine    int   // the longest journal line written or read: DuckDB's JSON reader must hold one
	prog       marts.PartitionProgress
	progAt     time.Time // last progress mirror write
	stale      bool      // the mirror lags a commit
	batchDup   map[keyEntry]struct{}
	out        []byte
	entries    []journalEntry
	closed     bool
}

// candidate is a decoded record of a batch: its key, position and line.
type candidate struct {
	h          keyHash
	pos        position
	start, end int
	keep       bool // new: its line goes to the journal
}

const (
	keysFileName = "keys.bin"
	dupsFileName = "duplicates.bin"
)

// openPartition recovers partition p's state: it finishes or undoes a lake
// flush a crash interrupted, loads the keys, re-reads the journal segments
// the lake does not hold yet (cutting off a torn tail), and opens a new
// segment for commits.
func (in *Intake) openPartition(p int) (_ *partition, err error) {
	dir := marts.PartitionStateDir(in.cfg.DataDir, in.cfg.Dataset.Name, p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	enc, err := in.newEncoder()
	if err != nil {
		return nil, err
	}
	pt := &partition{
		in: in, p: p, dir: dir, enc: enc,
		log:      in.log.With().Int("partition", p).Logger(),
		keys:     newKeySet(),
		dups:     map[keyEntry]struct{}{},
		batchDup: map[keyEntry]struct{}{},
	}
	defer func() {
		if err != nil {
			_ = pt.closeFiles() // err is the one to report
		}
	}()
	// One owner at a time: a replica that lost the partition's lease holds
	// the lock until it has flushed and closed it.
	if pt.unlockFunc, err = tryLockFile(filepath.Join(dir, "lock")); err != nil {
		return nil, fmt.Errorf("partition %d of %s: %w", p, in.cfg.Dataset.Name, err)
	}
	if pt.prog, err = marts.ReadOnePartitionProgress(in.cfg.DataDir, in.cfg.Dataset.Name, p); err != nil {
		return nil, err
	}
	if f := pt.prog.Flush; f != nil {
		if err := in.resolveFlush(pt, *f); err != nil {
			return nil, fmt.Errorf("partition %d: resume lake flush %s/%d: %w", p, f.Owner, f.N, err)
		}
	}
	committed := pt.prog.CommittedSeq
	note := func(e keyEntry) { committed = max(committed, e.pos.seq) }
	if pt.keyFile, err = openKeyFile(filepath.Join(dir, keysFileName), func(e keyEntry) { pt.keys.Add(e); note(e) }); err != nil {
		return nil, err
	}
	if pt.dupFile, err = openKeyFile(filepath.Join(dir, dupsFileName), func(e keyEntry) { pt.dups[e] = struct{}{}; note(e) }); err != nil {
		return nil, err
	}
	segs, err := segments(dir)
	if err != nil {
		return nil, err
	}
	next := pt.prog.LakeSegment + 1
	var flushed []uint64
	for _, s := range segs {
		r, err := readSegment(dir, s)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		pt.maxLine = max(pt.maxLine, r.maxLine)
		for _, e := range r.entries {
			note(e.keyEntry)
			if e.dup {
				pt.dups[e.keyEntry] = struct{}{}
				pt.newDups = append(pt.newDups, e.keyEntry)
				continue
			}
			pt.keys.Add(e.keyEntry)
			pt.newKeys = append(pt.newKeys, e.keyEntry)
		}
		if s <= pt.prog.LakeSegment {
			// The lake holds it, but a crash came before its keys were
			// kept and it was deleted.
			flushed = append(flushed, s)
			continue
		}
		pt.pending += r.lines
		next = s + 1
	}
	if len(flushed) > 0 {
		if err := pt.persistKeys(); err != nil {
			return nil, err
		}
		for _, s := range flushed {
			if err := removeSegment(dir, s); err != nil {
				return nil, err
			}
		}
	}
	if pt.j, err = openJournal(dir, next, true); err != nil {
		return nil, err
	}
	if pt.mark, err = os.OpenFile(marts.CommittedMarkFile(in.cfg.DataDir, in.cfg.Dataset.Name, p), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	if err := marts.WriteCommittedMark(pt.mark, committed); err != nil {
		return nil, err
	}
	pt.prog.Dataset, pt.prog.Partition = in.cfg.Dataset.Name, p
	pt.prog.CommittedSeq = committed
	pt.prog.Records, pt.prog.Duplicates = int64(pt.keys.Len()), int64(len(pt.dups))
	if pt.pending == 0 && pt.prog.Flush == nil {
		pt.prog.LakeSeq = committed
	}
	if err := pt.writeProgress(true); err != nil {
		return nil, err
	}
	pt.log.Debug().Int("keys", pt.keys.Len()).Int64("pending", pt.pending).Uint64("committed_seq", committed).Msg("partition opened")
	return pt, nil
}

func (pt *partition) writeProgress(durable bool) error {
	pt.prog.UpdatedAt = time.Now().UTC()
	pt.progAt = time.Now()
	pt.stale = false
	return marts.WritePartitionProgress(pt.in.cfg.DataDir, pt.prog, durable)
}

// progressEvery bounds how often commits rewrite the progress mirror (a
// file write and rename each); the lake flusher writes it too, and status
// reads it.
const progressEvery = time.Second

// commit de-duplicates a batch and journals its new records; its nil error
// (and so the runtime's acks) comes only after the journal is synced.
func (pt *partition) commit(batch []workers.Record) ([]workers.Reject, error) {
	pt.encMu.Lock()
	defer pt.encMu.Unlock()
	rejects := pt.encode(batch)

	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.closed {
		return nil, ErrNotStarted
	}
	clear(pt.batchDup)
	out := pt.out[:0]
	entries := pt.entries[:0]
	added := len(pt.newKeys)
	var inserted, dups int64
	maxSeq := pt.prog.CommittedSeq
	for _, r := range batch {
		maxSeq = max(maxSeq, r.Seq)
	}
	for i := range pt.cands {
		c := &pt.cands[i]
		e := keyEntry{h: c.h, pos: c.pos}
		first, seen := pt.keys.Insert(e)
		switch {
		case !seen:
			c.keep = true
			entries = append(entries, journalEntry{keyEntry: e})
			pt.newKeys = append(pt.newKeys, e)
			pt.maxLine = max(pt.maxLine, c.end-c.start)
			inserted++
		case first == c.pos:
			// The message that committed the key, again (redelivered after
			// a crash, or acks a killed server forgot): not a duplicate.
		default:
			_, known := pt.dups[e]
			if _, inBatch := pt.batchDup[e]; known || inBatch {
				continue // a duplicate counted before, redelivered
			}
			pt.batchDup[e] = struct{}{}
			entries = append(entries, journalEntry{keyEntry: e, dup: true})
			dups++
		}
	}
	pt.entries = entries
	// Every record new (the common case): the encoded lines are the
	// journal's as they are, without a copy.
	lines := pt.lines
	if int(inserted) < len(pt.cands) {
		for _, c := range pt.cands {
			if c.keep {
				out = append(out, pt.lines[c.start:c.end]...)
			}
		}
		pt.out, lines = out, out
	}
	defer pt.shrink()
	if err := pt.j.Append(entries, lines); err != nil {
		// Not committed: the keys this batch added go back out.
		for _, e := range pt.newKeys[added:] {
			pt.keys.Delete(e.h)
		}
		pt.newKeys = pt.newKeys[:added]
		return nil, err
	}
	for e := range pt.batchDup {
		pt.dups[e] = struct{}{}
		pt.newDups = append(pt.newDups, e)
	}
	// Before the acks: whoever reads the progress while this owner is
	// gone must see these records as committed (the mirror may lag).
	if maxSeq > pt.prog.CommittedSeq {
		if err := marts.WriteCommittedMark(pt.mark, maxSeq); err != nil {
			pt.log.Warn().Err(err).Msg("write committed mark")
		}
	}
	pt.pending += inserted
	pt.prog.CommittedSeq = maxSeq
	pt.prog.Records += inserted
	pt.prog.Duplicates += dups
	if pt.pending == 0 && pt.prog.Flush == nil {
		pt.prog.LakeSeq = pt.prog.CommittedSeq // nothing of it waits for the lake
	}
	pt.stale = true
	if time.Since(pt.progAt) >= progressEvery {
		if err := pt.writeProgress(false); err != nil {
			pt.log.Warn().Err(err).Msg("write progress mirror")
		}
	}
	return rejects, nil
}

// maxKeptBuffer bounds the line buffers a partition keeps between batches:
// one batch of records near the max payload must not pin its size.
const maxKeptBuffer = 64 << 20

func (pt *partition) shrink() {
	if cap(pt.lines) > maxKeptBuffer {
		pt.lines = nil
	}
	if cap(pt.out) > maxKeptBuffer {
		pt.out = nil
	}
}

// encode turns each record into its journal line in pt.lines, noting the
// candidates in pt.cands; records that cannot be stored are rejected.
func (pt *partition) encode(batch []workers.Record) []workers.Reject {
	var rejects []workers.Reject
	lines := pt.lines[:0]
	cands := pt.cands[:0]
	now := time.Now().UnixMicro()
	for i, r := range batch {
		start := len(lines)
		at := now
		if !r.Published.IsZero() {
			at = r.Published.UnixMicro()
		}
		pos := position{seq: r.Seq, idx: uint32(r.Index)}
		lines = appendRecordPrefix(lines, at)
		out, key, err := pt.enc.Encode(lines, r.Data)
		if err != nil {
			lines = lines[:start]
			rejects = append(rejects, workers.Reject{Index: i, Err: err})
			continue
		}
		lines = append(out, '\n') //nolint:gocritic // out is lines with the record encoded onto it
		cands = append(cands, candidate{h: hashKey(key), pos: pos, start: start, end: len(lines)})
	}
	pt.lines, pt.cands = lines, cands
	return rejects
}

// flushSegments is what a lake flush takes of a partition.
type flushSegments struct {
	pt    *partition
	segs  []uint64
	paths []string // of their lines
	last  uint64
	seq   uint64
	rows  int64
	// maxLine bounds the segments' lines.
	maxLine int
}

// beginFlush closes the journal's current segment and records that lake
// flush n of owner takes every segment not in the lake yet. It returns
// nothing to flush (nil) when there is none.
func (pt *partition) beginFlush(owner string, n uint64) (*flushSegments, error) {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.closed {
		return nil, nil
	}
	last, err := pt.j.Rotate()
	if err != nil {
		return nil, fmt.Errorf("partition %d: rotate journal: %w", pt.p, err)
	}
	if last <= pt.prog.LakeSegment {
		// Nothing for the lake; the mirror still tells the builder and
		// status what the last commits (duplicates, redeliveries) reached.
		if pt.stale {
			return nil, pt.writeProgress(false)
		}
		return nil, nil
	}
	segs, err := segments(pt.dir)
	if err != nil {
		return nil, err
	}
	fs := &flushSegments{pt: pt, last: last, seq: pt.prog.CommittedSeq, rows: pt.pending, maxLine: pt.maxLine}
	for _, s := range segs {
		if s > pt.prog.LakeSegment && s <= last {
			fs.segs = append(fs.segs, s)
			fs.paths = append(fs.paths, segmentPath(pt.dir, s))
		}
	}
	if len(fs.paths) == 0 {
		return nil, nil
	}
	pt.prog.Flush = &marts.LakeFlush{Owner: owner, N: n, LastSegment: last, Seq: fs.seq}
	if err := pt.writeProgress(true); err != nil {
		pt.prog.Flush = nil
		return nil, err
	}
	return fs, nil
}

// completeFlush notes that the lake holds the flushed segments. The flush
// committed with its log entry, so the partition moves past them in memory
// whatever fails after: later flushes must never take them again. Then the
// keys committed so far go to the key files (they outlive the segments),
// the progress is written, and the segments up to the lake's are deleted;
// what fails here is redone by the next flush, or by the next open, which
// finds the flush committed.
func (pt *partition) completeFlush(fs *flushSegments) error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.prog.LakeSegment = fs.last
	pt.prog.LakeSeq = max(pt.prog.LakeSeq, fs.seq)
	pt.prog.Flush = nil
	pt.pending -= fs.rows
	if pt.pending == 0 {
		pt.prog.LakeSeq = pt.prog.CommittedSeq
	}
	if err := pt.persistKeys(); err != nil {
		return err // the segments stay: a restart re-reads their keys
	}
	// Not synced: until it is on disk, the one beginFlush synced still
	// names this flush, which a restart finds committed and settles the
	// same way. Two fsyncs fewer per partition and flush, beside commits
	// that wait on the disk's every fsync.
	if err := pt.writeProgress(false); err != nil {
		return err
	}
	return pt.removeFlushedSegments()
}

// removeFlushedSegments deletes the segments the lake holds; the caller
// holds mu and has kept their keys.
func (pt *partition) removeFlushedSegments() error {
	segs, err := segments(pt.dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range segs {
		if s <= pt.prog.LakeSegment {
			errs = append(errs, removeSegment(pt.dir, s))
		}
	}
	return errors.Join(errs...)
}

// abortFlush forgets a flush that failed before it committed; its
// segments wait for the next one.
func (pt *partition) abortFlush() error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	pt.prog.Flush = nil
	return pt.writeProgress(true)
}

func (pt *partition) persistKeys() error {
	if err := pt.keyFile.Append(pt.newKeys, true); err != nil {
		return err
	}
	pt.newKeys = pt.newKeys[:0]
	if err := pt.dupFile.Append(pt.newDups, true); err != nil {
		return err
	}
	pt.newDups = pt.newDups[:0]
	return nil
}

func (pt *partition) pendingAtLeast(n int64) bool {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.pending >= n
}

// close ends intake: later commits fail, the progress mirror is written.
// The journal's segments stay for the next owner when the lake does not
// hold them yet.
func (pt *partition) close() error {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	if pt.closed {
		return nil
	}
	pt.closed = true
	err := pt.writeProgress(true)
	return errors.Join(err, pt.closeFiles())
}

func (pt *partition) closeFiles() error {
	var errs []error
	if pt.j != nil {
		errs = append(errs, pt.j.Close())
	}
	if pt.keyFile != nil {
		errs = append(errs, pt.keyFile.Close())
	}
	if pt.mark != nil {
		errs = append(errs, pt.mark.Close())
	}
	if pt.dupFile != nil {
		errs = append(errs, pt.dupFile.Close())
	}
	if pt.unlockFunc != nil {
		pt.unlockFunc()
		pt.unlockFunc = nil
	}
	return errors.Join(errs...)
}
