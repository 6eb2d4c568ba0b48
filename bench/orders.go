package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Kind says what a generated record is meant to be.
type Kind int

const (
	Valid Kind = iota
	Invalid
	Duplicate
)

func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Invalid:
		return "invalid"
	case Duplicate:
		return "duplicate"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Order is a shop order as a client publishes it.
type Order struct {
	OrderID    string `json:"order_id"`
	CustomerID string `json:"customer_id"`
	Amount     any    `json:"amount"`
	Currency   string `json:"currency"`
	Country    string `json:"country"`
	TS         string `json:"ts"`
	Email      string `json:"email,omitempty"`
}

// OrderGenerator makes a deterministic stream of shop orders.
type OrderGenerator struct {
	// InvalidShare and DuplicateShare are fractions in [0,1).
	InvalidShare, DuplicateShare float64
	// Start is the event time of the first order; orders advance by Step
	// each, with some arriving late (up to two days back).
	Start time.Time
	// Step is the event time between two orders. Default a minute, so a
	// short run spans many days (many mart partitions); an open-loop run
	// uses 1/rate, so event time follows the clock as in a live shop.
	Step time.Duration
	// Customers bounds distinct customer ids. Default 1000.
	Customers int

	rng   *rand.Rand
	n     int
	valid []Order // recent valid orders, the pool duplicates come from
}

// NewOrderGenerator returns a generator for seed.
func NewOrderGenerator(seed uint64, invalidShare, duplicateShare float64) *OrderGenerator {
	return &OrderGenerator{
		InvalidShare: invalidShare, DuplicateShare: duplicateShare,
		Start:     time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC),
		Step:      time.Minute,
		Customers: 1000,
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
}

var (
	currencies = []string{"USD", "EUR", "GBP", " usd", "eur ", "Gbp"}
	countries  = []string{"US", "DE", "GB", "FR", "us", " de", "NL", "JP"}
	zones      = []string{"Z", "+01:00", "-02:00", "+05:30", "-07:00"}
	// zoneLocations are zones as locations, parsed once.
	zoneLocations = func() []*time.Location {
		locs := make([]*time.Location, len(zones))
		for i, z := range zones {
			t, err := time.Parse("Z07:00", z)
			if err != nil {
				panic(err)
			}
			locs[i] = t.Location()
		}
		return locs
	}()
)

// Next returns the next record as one NDJSON line (no newline) and its kind.
func (g *OrderGenerator) Next() ([]byte, Kind) {
	line, _, kind := g.NextWithID()
	return line, kind
}

// NextWithID is Next with the record's order_id, as `jetfleet publish
// --id-field order_id` would read it, or "" when the record is too broken
// to have one (not JSON).
func (g *OrderGenerator) NextWithID() (line []byte, id string, kind Kind) {
	g.n++
	r := g.rng.Float64()
	if r < g.DuplicateShare && len(g.valid) > 0 {
		o := g.valid[g.rng.IntN(len(g.valid))]
		return appendOrder(nil, &o), o.OrderID, Duplicate
	}
	o := g.order()
	if r < g.DuplicateShare+g.InvalidShare {
		line, ok := g.corrupt(o)
		if !ok {
			return line, "", Invalid
		}
		return line, o.OrderID, Invalid
	}
	if len(g.valid) < 1024 {
		g.valid = append(g.valid, o)
	} else {
		g.valid[g.rng.IntN(len(g.valid))] = o
	}
	return appendOrder(nil, &o), o.OrderID, Valid
}

func (g *OrderGenerator) order() Order {
	ts := g.Start.Add(time.Duration(g.n) * g.Step)
	if g.rng.IntN(20) == 0 { // a late record for an old partition
		ts = ts.Add(-time.Duration(g.rng.IntN(48)) * time.Hour)
	}
	zi := g.rng.IntN(len(zones))
	var tsText string
	if zones[zi] == "Z" {
		tsText = ts.Format("2006-01-02T15:04:05Z")
	} else {
		tsText = ts.In(zoneLocations[zi]).Format("2006-01-02T15:04:05") + zones[zi]
	}
	o := Order{
		OrderID:    "o-" + strconv.Itoa(g.n),
		CustomerID: "c-" + strconv.Itoa(1+g.rng.IntN(max(g.Customers, 1))),
		Amount:     float64(g.rng.IntN(100_000)) / 100,
		Currency:   currencies[g.rng.IntN(len(currencies))],
		Country:    countries[g.rng.IntN(len(countries))],
		TS:         tsText,
	}
	if g.rng.IntN(3) == 0 {
		o.Email = " User" + strconv.Itoa(g.rng.IntN(500)) + "@Example.com"
	}
	return o
}

// corrupt breaks one rule of the shop pipeline; ok is false when the
// record is not JSON at all.
func (g *OrderGenerator) corrupt(o Order) (line []byte, ok bool) {
	switch g.rng.IntN(7) {
	case 0:
		o.Amount = -1.5
	case 1:
		o.Amount = "12.50"
	case 2:
		o.Currency = "BTC"
	case 3:
		o.Country = "USA"
	case 4:
		o.TS = "yesterday"
	case 5:
		o.CustomerID = ""
	default:
		return []byte(`{"order_id": "` + o.OrderID + `", broken`), false
	}
	return appendOrder(nil, &o), true
}

// appendOrder appends o as encoding/json marshals it, without its
// reflection: an open-loop run generates every record while the fleet
// runs, and the generator must cost little beside it.
func appendOrder(dst []byte, o *Order) []byte {
	dst = append(dst, `{"order_id":`...)
	dst = appendJSONString(dst, o.OrderID)
	dst = append(dst, `,"customer_id":`...)
	dst = appendJSONString(dst, o.CustomerID)
	dst = append(dst, `,"amount":`...)
	switch a := o.Amount.(type) {
	case float64:
		dst = appendJSONFloat(dst, a)
	case string:
		dst = appendJSONString(dst, a)
	default:
		b, _ := json.Marshal(a)
		dst = append(dst, b...)
	}
	dst = append(dst, `,"currency":`...)
	dst = appendJSONString(dst, o.Currency)
	dst = append(dst, `,"country":`...)
	dst = appendJSONString(dst, o.Country)
	dst = append(dst, `,"ts":`...)
	dst = appendJSONString(dst, o.TS)
	if o.Email != "" {
		dst = append(dst, `,"email":`...)
		dst = appendJSONString(dst, o.Email)
	}
	return append(dst, '}')
}

// appendJSONString quotes s as encoding/json does: the generator's
// strings are plain ASCII, anything else goes through encoding/json.
func appendJSONString(dst []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendJSONFloat writes f as encoding/json does for the generator's
// amounts (no exponent between 1e-6 and 1e21).
func appendJSONFloat(dst []byte, f float64) []byte {
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		b, _ := json.Marshal(f)
		return append(dst, b...)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64)
}
