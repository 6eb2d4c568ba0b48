package aggregate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/jetfleet/jetfleet/marts"
)

// output is one thing a flush writes: a mart (partitions replaced) or the
// dataset's lake (a new file per partition and flush, append only).
type output struct {
	name        string
	kind        string // marts.KindMart or marts.KindLake
	sql         string
	partitionBy []string
	appendOnly  bool
	dir         string
	fingerprint string
	flushEvery  int
	flushAfter  time.Duration
	columns     []marts.Column

	// Persisted in _jf_outputs; owned by the flusher.
	flushedBatch int64
	lastSeq      uint64

	// Pending work, guarded by Aggregator.pendMu.
	pendingRecords int64
	pendingSince   time.Time
}

func (a *Aggregator) buildOutputs() []*output {
	var outs []*output
	for _, m := range a.cfg.Marts {
		if m.Dataset != a.cfg.Dataset.Name || a.cfg.Partition != nil {
			continue
		}
		o := &output{
			name: m.Name, kind: marts.KindMart, sql: strings.TrimRight(strings.TrimSpace(m.SQL), ";"),
			partitionBy: m.PartitionBy, dir: marts.MartPath(a.cfg.DataDir, m.Name),
			flushEvery: m.FlushRecords, flushAfter: m.FlushInterval,
		}
		o.fingerprint = fingerprint(o.kind, o.sql, strings.Join(o.partitionBy, ","))
		outs = append(outs, o)
	}
	if !a.cfg.NoLake {
		outs = append(outs, lakeOutput(a.cfg.DataDir, a.cfg.Dataset))
	}
	for _, o := range outs {
		if o.flushEvery <= 0 {
			o.flushEvery = a.cfg.FlushRecords
		}
		if o.flushAfter <= 0 {
			o.flushAfter = a.cfg.FlushInterval
		}
	}
	return outs
}

// lakeOutput is the dataset's lake: its records, a file per flush and
// date, append only.
func lakeOutput(dataDir string, ds DatasetConfig) *output {
	sql, part := lakeSQL(ds)
	o := &output{
		name: ds.Name, kind: marts.KindLake, sql: sql, partitionBy: []string{part},
		appendOnly: true, dir: marts.LakePath(dataDir, ds.Name),
	}
	o.fingerprint = fingerprint(o.kind, o.sql, part)
	return o
}

// lakeSQL selects the schema columns and the event date: the UTC date of
// the first timestamp or date column, else of the ingest time.
func lakeSQL(ds DatasetConfig) (sql, partition string) {
	partition = "date"
	names := make([]string, 0, len(ds.Schema))
	var tsCol string
	for _, c := range ds.Schema {
		names = append(names, ident(c.Name))
		if strings.EqualFold(c.Name, partition) {
			partition = "lake_date"
		}
		switch baseType(c.Type) {
		case "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATETIME", "TIMESTAMP_US", "DATE":
			if tsCol == "" {
				tsCol = c.Name
			}
		}
	}
	dateExpr := "CAST(_jf_ingested AS DATE)"
	if tsCol != "" {
		dateExpr = fmt.Sprintf("coalesce(CAST(%s AS DATE), %s)", ident(tsCol), dateExpr)
	}
	return fmt.Sprintf("SELECT %s, %s AS %s FROM %s", strings.Join(names, ", "), dateExpr, ident(partition), viewLake), partition
}

func fingerprint(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(h[:8])
}

// manifest describes o as the state last recorded it.
func (o *output) manifest(dataset string, rows int64, partitions int, updated time.Time) marts.Manifest {
	return marts.Manifest{
		Name: o.name, Kind: o.kind, Dataset: dataset, Columns: o.columns, PartitionBy: o.partitionBy,
		Rows: rows, Partitions: partitions, UpdatedAt: updated.UTC(), LastSeq: o.lastSeq, Dir: o.dir,
	}
}
