package aggregate

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// The shop fixtures: the same dataset and marts as examples/shop.

func shopDataset() DatasetConfig {
	return DatasetConfig{
		Name: "orders",
		Key:  "order_id",
		Schema: []Column{
			{"order_id", "VARCHAR"},
			{"customer_id", "VARCHAR"},
			{"amount", "DOUBLE"},
			{"currency", "VARCHAR"},
			{"amount_usd", "DOUBLE"},
			{"country", "VARCHAR"},
			{"ts", "TIMESTAMPTZ"},
			{"email_hash", "VARCHAR"},
		},
	}
}

const (
	dailySalesSQL = `SELECT CAST(ts AT TIME ZONE 'UTC' AS DATE) AS day, country, count(*) AS orders,
  sum(amount_usd) AS revenue_usd, sum(amount_usd) / count(*) AS aov_usd
FROM orders GROUP BY 1, 2`
	customerLTVSQL = `SELECT customer_id, count(*) AS orders, sum(amount_usd) AS revenue_usd,
  min(ts) AS first_order, max(ts) AS last_order
FROM orders GROUP BY customer_id`
)

func shopMarts() []Mart {
	return []Mart{
		{Name: "daily_sales", Dataset: "orders", SQL: dailySalesSQL, PartitionBy: []string{"day"}},
		{Name: "customer_ltv", Dataset: "orders", SQL: customerLTVSQL},
	}
}

// order is a clean shop record.
type order struct {
	OrderID    string  `json:"order_id"`
	CustomerID string  `json:"customer_id"`
	Amount     float64 `json:"amount"`
	Currency   string  `json:"currency"`
	AmountUSD  float64 `json:"amount_usd"`
	Country    string  `json:"country"`
	TS         string  `json:"ts"`
	EmailHash  string  `json:"email_hash,omitempty"`
	Extra      string  `json:"coupon,omitempty"` // not in the schema: ignored
}

// genOrders makes n distinct orders over ten days in rough time order,
// then a stream of them with about 10% re-sent (duplicates, some much
// later) and 5% arriving late (an old day's order among new ones).
func genOrders(seed uint64, n int) (distinct []order, stream [][]byte) {
	r := rand.New(rand.NewPCG(seed, 7))
	countries := []string{"US", "DE", "GB", "FR", "JP"}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		ts := start.Add(time.Duration(i) * 10 * 24 * time.Hour / time.Duration(n)).Add(time.Duration(r.IntN(3600)) * time.Second)
		amount := float64(r.IntN(20000)+1) / 100
		o := order{
			OrderID: fmt.Sprintf("o-%05d", i), CustomerID: fmt.Sprintf("c-%03d", r.IntN(n/10+1)),
			Amount: amount, Currency: "USD", AmountUSD: amount, Country: countries[r.IntN(len(countries))],
			TS: ts.Format(time.RFC3339),
		}
		if r.IntN(3) == 0 {
			o.EmailHash = fmt.Sprintf("h%x", r.Uint32())
		}
		if r.IntN(5) == 0 {
			o.Extra = "SAVE10"
		}
		distinct = append(distinct, o)
	}
	order := make([]int, 0, n+n/5)
	var late []int
	for i := range n {
		if r.IntN(20) == 0 {
			late = append(late, i) // sent much later
			continue
		}
		order = append(order, i)
		if r.IntN(10) == 0 {
			order = append(order, i) // a duplicate right away
		}
		if len(late) > 0 && r.IntN(10) == 0 {
			order = append(order, late[0])
			late = late[1:]
		}
	}
	order = append(order, late...)
	for range n / 20 {
		order = append(order, r.IntN(n)) // duplicates of anything, days later
	}
	for _, i := range order {
		b, _ := json.Marshal(distinct[i])
		stream = append(stream, b)
	}
	return distinct, stream
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
