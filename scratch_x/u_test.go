package scratch

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

type src struct {
	n, pos int
	ids    [][]byte
}

func (s *src) ColumnInfos() []duckdb.ColumnInfo {
	v, _ := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	d, _ := duckdb.NewTypeInfo(duckdb.TYPE_DOUBLE)
	ts, _ := duckdb.NewTypeInfo(duckdb.TYPE_BIGINT)
	return []duckdb.ColumnInfo{{Name: "order_id", T: v}, {Name: "customer_id", T: v}, {Name: "amount", T: d}, {Name: "currency", T: v},
		{Name: "amount_usd", T: d}, {Name: "country", T: v}, {Name: "ts", T: ts}, {Name: "email_hash", T: v}}
}
func (s *src) Cardinality() *duckdb.CardinalityInfo { return &duckdb.CardinalityInfo{Cardinality: uint(s.n), Exact: true} }
func (s *src) Init()                                 {}
func (s *src) FillChunk(ch duckdb.DataChunk) error {
	size := duckdb.GetDataChunkCapacity()
	i := 0
	cust, cur, ctry, em := []byte("c-123"), []byte("EUR"), []byte("DE"), []byte("abcdef0123456789abcdef0123456789")
	for ; i < size && s.pos < s.n; i++ {
		duckdb.SetChunkValue(ch, 0, i, s.ids[s.pos])
		duckdb.SetChunkValue(ch, 1, i, cust)
		duckdb.SetChunkValue(ch, 2, i, 12.5)
		duckdb.SetChunkValue(ch, 3, i, cur)
		duckdb.SetChunkValue(ch, 4, i, 13.5)
		duckdb.SetChunkValue(ch, 5, i, ctry)
		duckdb.SetChunkValue(ch, 6, i, int64(1700000000000000+s.pos))
		duckdb.SetChunkValue(ch, 7, i, em)
		s.pos++
	}
	return ch.SetSize(i)
}

func TestUDF(t *testing.T) {
	n := 200000
	ids := make([][]byte, n)
	for i := range ids {
		ids[i] = []byte(fmt.Sprintf("o-%08d", i))
	}
	c0, _ := duckdb.NewConnector("", nil)
	db := sql.OpenDB(c0)
	db.Exec("SET threads=1")
	conn, _ := db.Conn(context.Background())
	err := duckdb.RegisterTableUDF(conn, "pend", duckdb.ChunkTableFunction{
		BindArguments: func(named map[string]any, args ...any) (duckdb.ChunkTableSource, error) {
			return &src{n: n, ids: ids}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ {
		c1 := cpu()
		w := time.Now()
		if _, err := conn.ExecContext(context.Background(), `CREATE OR REPLACE TABLE a AS SELECT * REPLACE (make_timestamptz(ts) AS ts) FROM pend()`); err != nil {
			t.Fatal(err)
		}
		t.Logf("udf ingest: %.2f us/rec cpu (wall %.2f)", float64((cpu()-c1).Nanoseconds())/1000/float64(n), float64(time.Since(w).Nanoseconds())/1000/float64(n))
	}
}
