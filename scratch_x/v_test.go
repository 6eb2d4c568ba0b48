package scratch

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestTSCost(t *testing.T) {
	dir := t.TempDir()
	n := 200000
	f := filepath.Join(dir, "a.ndjson")
	os.WriteFile(f, gen(n, 1), 0o644)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }
	variants := map[string]string{
		"ts TIMESTAMPTZ": cols,
		"ts VARCHAR":     `columns={_jf_at:'BIGINT', _jf_dup:'BOOLEAN', order_id:'VARCHAR', customer_id:'VARCHAR', amount:'DOUBLE', currency:'VARCHAR', amount_usd:'DOUBLE', country:'VARCHAR', ts:'VARCHAR', email_hash:'VARCHAR'}`,
		"all VARCHAR":    `columns={_jf_at:'VARCHAR', _jf_dup:'VARCHAR', order_id:'VARCHAR', customer_id:'VARCHAR', amount:'VARCHAR', currency:'VARCHAR', amount_usd:'VARCHAR', country:'VARCHAR', ts:'VARCHAR', email_hash:'VARCHAR'}`,
		"only ids":       `columns={order_id:'VARCHAR'}`,
	}
	for r := 0; r < 2; r++ {
		for name, cl := range variants {
			c := open(t, 1)
			c0 := cpu()
			must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE a AS SELECT * FROM read_json('%s', format='newline_delimited', %s)`, f, cl))
			c1 := cpu()
			t.Logf("%s: %.2f us/rec", name, us(c1-c0))
			c.Close()
		}
	}
}
