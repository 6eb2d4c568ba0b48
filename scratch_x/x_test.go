package scratch

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func open(t testing.TB, threads int) *sql.Conn {
	c, _ := duckdb.NewConnector("", func(e driver.ExecerContext) error {
		_, err := e.ExecContext(context.Background(), "SET TimeZone='UTC'", nil)
		return err
	})
	db := sql.OpenDB(c)
	db.Exec(fmt.Sprintf("SET threads=%d", threads))
	db.Exec("SET preserve_insertion_order=false")
	conn, _ := db.Conn(context.Background())
	return conn
}

func must(t testing.TB, c *sql.Conn, q string) {
	if _, err := c.ExecContext(context.Background(), q); err != nil {
		t.Fatal(q, err)
	}
}

func gen(n int, minutes int) []byte {
	var b []byte
	ts := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		b = append(b, `{"_jf_h":"0123456789abcdef0123456789abcdef","_jf_seq":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"_jf_idx":0,"_jf_at":1700000000000000,"order_id":"o-`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `","customer_id":"c-`...)
		b = strconv.AppendInt(b, int64(i%1000), 10)
		b = append(b, `","amount":`...)
		b = strconv.AppendFloat(b, float64(i%997)+0.25, 'g', -1, 64)
		b = append(b, `,"currency":"EUR","amount_usd":`...)
		b = strconv.AppendFloat(b, (float64(i%997)+0.25)*1.08, 'g', -1, 64)
		b = append(b, `,"country":"DE","ts":"`...)
		b = ts.Add(time.Duration(i*minutes)*time.Minute).AppendFormat(b, "2006-01-02T15:04:05.000000+00:00")
		b = append(b, `","email_hash":"abcdef0123456789abcdef0123456789"}`+"\n"...)
	}
	return b
}

const cols = `columns={_jf_at:'BIGINT', _jf_dup:'BOOLEAN', order_id:'VARCHAR', customer_id:'VARCHAR', amount:'DOUBLE', currency:'VARCHAR', amount_usd:'DOUBLE', country:'VARCHAR', ts:'TIMESTAMPTZ', email_hash:'VARCHAR'}`

func TestLake(t *testing.T) {
	dir := t.TempDir()
	n := 100000
	for _, minutes := range []int{1, 0} {
		f := filepath.Join(dir, "j.ndjson")
		os.WriteFile(f, gen(n, minutes), 0o644)
		for _, comp := range []string{"snappy", "uncompressed", "zstd"} {
			for _, threads := range []int{1, 2} {
				c := open(t, threads)
				us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }
				c0 := cpu()
				must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE nw AS SELECT order_id, customer_id, amount, currency, amount_usd, country, ts, email_hash, coalesce(CAST(ts AS DATE), CAST(make_timestamp(_jf_at) AS DATE)) AS date FROM read_json('%s', format='newline_delimited', %s) WHERE _jf_dup IS NULL`, f, cols))
				c1 := cpu()
				out := filepath.Join(dir, fmt.Sprint("o", minutes, comp, threads))
				must(t, c, fmt.Sprintf(`COPY nw TO '%s' (FORMAT parquet, COMPRESSION %s, PARTITION_BY (date))`, out, comp))
				c2 := cpu()
				must(t, c, fmt.Sprintf(`COPY (SELECT * EXCLUDE (date) FROM nw) TO '%s.single.parquet' (FORMAT parquet, COMPRESSION %s)`, out, comp))
				c3 := cpu()
				t.Logf("span=%dmin %s threads=%d: read_json %.2f us/rec, copy partitioned %.2f, copy single %.2f", minutes, comp, threads, us(c1-c0), us(c2-c1), us(c3-c2))
				c.Close()
			}
		}
	}
}
