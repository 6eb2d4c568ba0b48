package scratch

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPartitionOverhead(t *testing.T) {
	dir := t.TempDir()
	for _, parts := range []int{1, 10, 70, 200} {
		for _, comp := range []string{"snappy", "zstd"} {
			c := open(t, 1)
			must(t, c, fmt.Sprintf(`CREATE TABLE m AS SELECT DATE '2026-10-01' + CAST(i %% %d AS INTEGER) AS day, 'DE' AS country, i AS orders, i * 1.5 AS revenue FROM range(%d) t(i)`, parts, parts*5))
			c0, w0 := cpu(), time.Now()
			for r := 0; r < 10; r++ {
				out := filepath.Join(dir, fmt.Sprint("m", parts, comp, r))
				must(t, c, fmt.Sprintf(`COPY m TO '%s' (FORMAT parquet, COMPRESSION %s, PARTITION_BY (day))`, out, comp))
			}
			c1, w1 := cpu(), time.Now()
			// fsync every file written
			var files []string
			filepath.Walk(dir, func(p string, i os.FileInfo, err error) error {
				if i != nil && !i.IsDir() {
					files = append(files, p)
				}
				return nil
			})
			c2, w2 := cpu(), time.Now()
			for _, f := range files[:min(len(files), parts*10)] {
				fh, _ := os.Open(f)
				fh.Sync()
				fh.Close()
			}
			c3, w3 := cpu(), time.Now()
			n := parts * 10
			t.Logf("%d partitions %s: COPY %.3f ms cpu/file (wall %.3f), fsync %.3f ms cpu/file (wall %.3f)", parts, comp,
				float64((c1-c0).Microseconds())/1000/float64(n), float64(w1.Sub(w0).Microseconds())/1000/float64(n),
				float64((c3-c2).Microseconds())/1000/float64(n), float64(w3.Sub(w2).Microseconds())/1000/float64(n))
			c.Close()
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
		}
	}
}
