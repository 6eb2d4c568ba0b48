package scratch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func genCSV(n int) []byte {
	var b []byte
	ts := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		b = append(b, "0123456789abcdef0123456789abcdef,"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ",0,1700000000000000,,o-"...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,c-`...)
		b = strconv.AppendInt(b, int64(i%1000), 10)
		b = append(b, ',')
		b = strconv.AppendFloat(b, float64(i%997)+0.25, 'g', -1, 64)
		b = append(b, `,EUR,`...)
		b = strconv.AppendFloat(b, (float64(i%997)+0.25)*1.08, 'g', -1, 64)
		b = append(b, `,DE,`...)
		b = ts.Add(time.Duration(i)*time.Minute).AppendFormat(b, "2006-01-02 15:04:05.000000+00")
		b = append(b, ",abcdef0123456789abcdef0123456789\n"...)
	}
	return b
}

func TestReaders(t *testing.T) {
	dir := t.TempDir()
	n := 200000
	fj := filepath.Join(dir, "j.ndjson")
	os.WriteFile(fj, gen(n, 1), 0o644)
	fc := filepath.Join(dir, "j.csv")
	os.WriteFile(fc, genCSV(n), 0o644)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }
	for r := 0; r < 3; r++ {
		for _, threads := range []int{1, 2} {
			c := open(t, threads)
			c0 := cpu()
			must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE a AS SELECT * FROM read_json('%s', format='newline_delimited', %s)`, fj, cols))
			c1 := cpu()
			must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE b AS SELECT * FROM read_csv('%s', header=false, auto_detect=false, delim=',', quote='"', escape='"', columns={_jf_h:'VARCHAR', _jf_seq:'UBIGINT', _jf_idx:'UINTEGER', _jf_at:'BIGINT', _jf_dup:'BOOLEAN', order_id:'VARCHAR', customer_id:'VARCHAR', amount:'DOUBLE', currency:'VARCHAR', amount_usd:'DOUBLE', country:'VARCHAR', ts:'TIMESTAMPTZ', email_hash:'VARCHAR'})`, fc))
			c2 := cpu()
			var x int
			c.QueryRowContext(t.Context(), "SELECT count(*) FROM b WHERE ts IS NOT NULL").Scan(&x)
			t.Logf("threads=%d read_json %.2f us/rec, read_csv %.2f us/rec (%d)", threads, us(c1-c0), us(c2-c1), x)
			c.Close()
		}
	}
}
