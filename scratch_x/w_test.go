package scratch

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

func TestMetaCost(t *testing.T) {
	dir := t.TempDir()
	n := 200000
	full := gen(n, 1)
	re := regexp.MustCompile(`"_jf_h":"[0-9a-f]+","_jf_seq":[0-9]+,"_jf_idx":[0-9]+,`)
	slim := re.ReplaceAll(full, nil)
	if bytes.Equal(full, slim) {
		t.Fatal("no change")
	}
	fa := filepath.Join(dir, "a.ndjson")
	fb := filepath.Join(dir, "b.ndjson")
	os.WriteFile(fa, full, 0o644)
	os.WriteFile(fb, slim, 0o644)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / float64(n) }
	for r := 0; r < 3; r++ {
		c := open(t, 1)
		c0 := cpu()
		must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE a AS SELECT * FROM read_json('%s', format='newline_delimited', %s)`, fa, cols))
		c1 := cpu()
		must(t, c, fmt.Sprintf(`CREATE OR REPLACE TABLE b AS SELECT * FROM read_json('%s', format='newline_delimited', %s)`, fb, cols))
		c2 := cpu()
		t.Logf("with meta %.2f us/rec (%d bytes), without %.2f us/rec (%d bytes)", us(c1-c0), len(full), us(c2-c1), len(slim))
		c.Close()
	}
}
