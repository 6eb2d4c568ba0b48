package aggregate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jetfleet/jetfleet/internal/duckdb"
	"github.com/jetfleet/jetfleet/marts"
)

// The mart builder keeps its state in the engine and checkpoints it now
// and then, so a restart (or another replica taking the build over) does
// not fold the whole lake again: the lake log position it folded up to,
// the lake's file list, and each incremental mart's partial aggregates.
// The checkpoint is a DuckDB file (partial aggregates keep their exact
// types, HUGEINT sums included) per generation, and checkpoint.json names
// the current generation; it is written last, so a crash leaves the
// previous checkpoint in force and the log entries after it to replay.

// builderCheckpoint is checkpoint.json.
type builderCheckpoint struct {
	Gen uint64 `json:"gen"`
	// Processed is, per owner of the lake log, the last entry folded in;
	// entries up to it may be gone from the log.
	Processed map[string]uint64 `json:"processed"`
	// Folded is, per key partition, the committed sequence the marts hold.
	Folded   map[string]uint64 `json:"folded"`
	LakeRows int64             `json:"lake_rows"`
	// Months are the lake's partition directories.
	Months []string                  `json:"months"`
	Marts  map[string]martCheckpoint `json:"marts"`
	At     time.Time                 `json:"at"`
}

type martCheckpoint struct {
	Fingerprint string           `json:"fingerprint"`
	Columns     []marts.Column   `json:"columns"`
	Parts       map[string]int64 `json:"parts"`
	UpdatedAt   time.Time        `json:"updated_at"`
	LastSeq     uint64           `json:"last_seq"`
	// Partials names the checkpoint's table of partial aggregates, ""
	// for a mart recomputed from the lake.
	Partials string `json:"partials,omitempty"`
}

func builderDir(dataDir, dataset string) string {
	return filepath.Join(marts.DatasetStateDir(dataDir, dataset), "builder")
}

func checkpointFile(dataDir, dataset string) string {
	return filepath.Join(builderDir(dataDir, dataset), "checkpoint.json")
}

func checkpointDB(dataDir, dataset string, gen uint64) string {
	return filepath.Join(builderDir(dataDir, dataset), "checkpoint-"+strconv.FormatUint(gen, 10)+".duckdb")
}

// readCheckpoint reads the current checkpoint; none yet is the zero one.
func readCheckpoint(dataDir, dataset string) (builderCheckpoint, error) {
	cp := builderCheckpoint{Processed: map[string]uint64{}, Folded: map[string]uint64{}, Marts: map[string]martCheckpoint{}}
	b, err := os.ReadFile(checkpointFile(dataDir, dataset))
	if errors.Is(err, fs.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, err
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return cp, fmt.Errorf("%w: %s: %v", marts.ErrBadManifest, checkpointFile(dataDir, dataset), err)
	}
	if cp.Processed == nil {
		cp.Processed = map[string]uint64{}
	}
	if cp.Folded == nil {
		cp.Folded = map[string]uint64{}
	}
	if cp.Marts == nil {
		cp.Marts = map[string]martCheckpoint{}
	}
	return cp, nil
}

// saveCheckpoint writes generation cp.Gen: the engine tables to a new
// DuckDB file, then checkpoint.json; then it removes the previous
// generation and the log entries the checkpoint covers.
func (b *MartBuilder) saveCheckpoint(ctx context.Context, conn *sql.Conn, cp builderCheckpoint, prev builderCheckpoint) error {
	ds := b.cfg.Dataset.Name
	dir := builderDir(b.cfg.DataDir, ds)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := checkpointDB(b.cfg.DataDir, ds, cp.Gen)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	stmts := []string{
		fmt.Sprintf("ATTACH %s AS _jf_cp", duckdb.Literal(path)),
		"CREATE TABLE _jf_cp.lake_files AS SELECT * FROM " + lakeFilesTable,
	}
	for _, ms := range b.marts {
		if ms.plan != nil {
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE _jf_cp.%s AS SELECT * FROM %s", duckdb.Ident(cp.Marts[ms.name].Partials), ms.partials))
		}
	}
	stmts = append(stmts, "DETACH _jf_cp")
	if err := execAll(ctx, conn, stmts...); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE IF EXISTS _jf_cp")
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := syncFile(path); err != nil {
		return err
	}
	data, err := json.Marshal(cp)
	if err != nil {
		return err
	}
	if err := marts.WriteFileAtomic(checkpointFile(b.cfg.DataDir, ds), append(data, '\n'), true); err != nil {
		return err
	}
	if prev.Gen > 0 && prev.Gen != cp.Gen {
		_ = os.Remove(checkpointDB(b.cfg.DataDir, ds, prev.Gen))
		_ = os.Remove(checkpointDB(b.cfg.DataDir, ds, prev.Gen) + ".wal")
	}
	var errs []error
	for owner, n := range cp.Processed {
		errs = append(errs, removeLakeEntries(b.cfg.DataDir, ds, owner, prev.Processed[owner]+1, n))
		// An owner's directory goes once empty (a run that ended); a run
		// still flushing makes it again for its next entry.
		_ = os.Remove(filepath.Dir(lakeEntryPath(b.cfg.DataDir, ds, owner, 1)))
	}
	return errors.Join(errs...)
}

// loadCheckpoint restores the engine tables of checkpoint cp.
func (b *MartBuilder) loadCheckpoint(ctx context.Context, conn *sql.Conn, cp builderCheckpoint, keepFunc func(*martState) bool) error {
	path := checkpointDB(b.cfg.DataDir, b.cfg.Dataset.Name, cp.Gen)
	stmts := []string{
		fmt.Sprintf("ATTACH %s AS _jf_cp (READ_ONLY)", duckdb.Literal(path)),
		fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM _jf_cp.lake_files", lakeFilesTable),
	}
	for _, ms := range b.marts {
		mc, ok := cp.Marts[ms.name]
		if ok && mc.Partials != "" && ms.plan != nil && keepFunc(ms) {
			stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE TABLE %s AS SELECT * FROM _jf_cp.%s", ms.partials, duckdb.Ident(mc.Partials)))
		}
	}
	stmts = append(stmts, "DETACH _jf_cp")
	if err := execAll(ctx, conn, stmts...); err != nil {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DETACH DATABASE IF EXISTS _jf_cp")
		return fmt.Errorf("load checkpoint %s: %w", path, err)
	}
	return nil
}
