package nativemem

import (
	"database/sql"
	"fmt"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/jetfleet/jetfleet/embedded/embeddedtest"
)

// DuckDB's memory is its jemalloc's: a query over a large table shows up
// as allocated and resident, and what it frees stays resident as dirty
// pages until they decay.
func TestReadSeesDuckDBAndDecayReturnsPages(t *testing.T) {
	before := Read()
	if !before.HaveDuckDB {
		t.Skip("DuckDB is built without jemalloc here")
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t AS SELECT i, md5(i::VARCHAR) AS s FROM range(2000000) r(i)`); err != nil {
		t.Fatal(err)
	}
	holding := Read()
	if grew := holding.DuckDBAllocated - before.DuckDBAllocated; grew < 32<<20 {
		t.Fatalf("DuckDB's allocated memory grew %d bytes with a 2M-row table, want >= 32 MiB", grew)
	}
	if holding.DuckDBResident < holding.DuckDBAllocated {
		t.Fatalf("resident %d < allocated %d", holding.DuckDBResident, holding.DuckDBAllocated)
	}
	// A hash aggregate allocates and frees far more than the table.
	var groups int64
	if err := db.QueryRow(`SELECT count(*) FROM (SELECT s, count(*) FROM t GROUP BY s)`).Scan(&groups); err != nil || groups != 2000000 {
		t.Fatalf("groups %d, %v", groups, err)
	}
	if _, err := db.Exec(`DROP TABLE t`); err != nil {
		t.Fatal(err)
	}
	dropped := Read()
	if dropped.DuckDBAllocated >= holding.DuckDBAllocated {
		t.Fatalf("allocated %d after dropping the table, %d with it", dropped.DuckDBAllocated, holding.DuckDBAllocated)
	}
	// The decay is by time: wait it out, asking for it every 100ms.
	embeddedtest.CheckFor(t, 10*time.Second, 100*time.Millisecond, func() error {
		if err := Decay(); err != nil {
			t.Fatal(err)
		}
		decayed := Read()
		if decayed.Dirty() >= dropped.Dirty()/2 {
			return fmt.Errorf("dirty pages %d MiB after the drop, still %d MiB after decay", dropped.Dirty()>>20, decayed.Dirty()>>20)
		}
		t.Logf("dirty: %d MiB after the drop, %d MiB after decay", dropped.Dirty()>>20, decayed.Dirty()>>20)
		return nil
	})
}

func TestReadLibc(t *testing.T) {
	s := Read()
	if !s.HaveLibc {
		t.Skip("the libc does not report its heap here")
	}
	if s.LibcInUse <= 0 {
		t.Fatalf("libc heap in use %d", s.LibcInUse)
	}
}
