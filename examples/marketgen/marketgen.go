// Package marketgen makes the market example's demo data: a deterministic
// stream of trades from two feeds of different shapes (the sources of
// examples/market/pipeline.yaml), with a share of invalid records and of
// replays, for `jetfleet dev --demo` and tests.
//
// Prices follow a seeded random walk per symbol; event time advances by
// about Config.Step per record, so ticks are in time order per feed.
//
//	g := marketgen.New(marketgen.Config{Seed: 1, Start: start})
//	for range 1000 {
//		rec := g.Next() // rec.Data on jf.ingest.ticks, rec.MsgID as Nats-Msg-Id
//	}
package marketgen

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

// Dataset is the market example's dataset the records are published to
// (jf.ingest.ticks).
const Dataset = "ticks"

// Feeds.
const (
	FeedA = "A" // flat: {"id","sym","px" (a string),"size","ts" (epoch ms)}
	FeedB = "B" // nested: {"instrument":{"ticker","venue"},"trade":{"id","price","qty"},"time" (RFC 3339)}
)

// Config says what to generate. The zero value but Start is usable.
type Config struct {
	Seed uint64
	// Start is the event time of the first tick (default 2026-11-22T00:00Z).
	Start time.Time
	// Step is the mean event time between two ticks across all symbols
	// (default 1s); each step is 1ms at least.
	Step time.Duration
	// Symbols and their opening prices in cents; default AAPL, MSFT,
	// NVDA, TSLA.
	Symbols []Symbol
	// InvalidShare and ReplayShare are the fractions of records that are
	// invalid and that are byte-identical replays of an earlier valid
	// record, in [0,1).
	InvalidShare, ReplayShare float64
}

// Symbol is an instrument and its opening price in cents.
type Symbol struct {
	Ticker string
	Cents  int64
}

// DefaultSymbols are the instruments of a zero Config.
var DefaultSymbols = []Symbol{{"AAPL", 18725}, {"MSFT", 41100}, {"NVDA", 13250}, {"TSLA", 24510}}

// Record is one generated message body and what it is.
type Record struct {
	Data []byte
	// MsgID is a Nats-Msg-Id for it: unique per record, so a replay
	// reaches the pipeline and is dropped there by the dataset key.
	MsgID string
	// Feed is FeedA or FeedB, "" for a record of neither shape.
	Feed string
	// TradeID is the trade's id, "" for an invalid record.
	TradeID string
	// Valid says the market pipeline accepts the record (a replay is
	// valid, and counts once).
	Valid  bool
	Replay bool
}

// Generator makes records; it is not safe for concurrent use.
type Generator struct {
	cfg    Config
	rng    *rand.Rand
	now    time.Time
	cents  []int64
	n      int
	recent []Record // recent valid originals, the pool replays come from
}

// New returns a generator for cfg.
func New(cfg Config) *Generator {
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Step <= 0 {
		cfg.Step = time.Second
	}
	if len(cfg.Symbols) == 0 {
		cfg.Symbols = DefaultSymbols
	}
	g := &Generator{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d6b74)), now: cfg.Start.UTC().Truncate(time.Millisecond)}
	for _, s := range cfg.Symbols {
		g.cents = append(g.cents, s.Cents)
	}
	return g
}

// Next returns the next record.
func (g *Generator) Next() Record {
	g.n++
	switch p := g.rng.Float64(); {
	case p < g.cfg.ReplayShare && len(g.recent) > 0:
		r := g.recent[g.rng.IntN(len(g.recent))]
		r.Replay = true
		r.MsgID = fmt.Sprintf("%s/replay-%d", r.TradeID, g.n)
		return r
	case p < g.cfg.ReplayShare+g.cfg.InvalidShare:
		return g.invalid()
	}
	r := g.tick()
	if len(g.recent) < 256 {
		g.recent = append(g.recent, r)
	} else {
		g.recent[g.rng.IntN(len(g.recent))] = r
	}
	return r
}

// tick advances the clock and one symbol's price and returns a valid trade.
func (g *Generator) tick() Record {
	step := time.Duration(float64(g.cfg.Step) * (0.5 + g.rng.Float64())).Truncate(time.Millisecond)
	g.now = g.now.Add(max(step, time.Millisecond))
	i := g.rng.IntN(len(g.cents))
	// A log-normal step of about 0.1%, on whole cents, never below one.
	g.cents[i] = max(1, int64(math.Round(float64(g.cents[i])*math.Exp(0.001*g.rng.NormFloat64()))))
	sym, price, size := g.cfg.Symbols[i].Ticker, cents(g.cents[i]), 1+g.rng.IntN(50)*10
	if g.rng.IntN(2) == 0 {
		id := fmt.Sprintf("XA-%d-%d", g.now.UnixMilli(), g.n)
		if g.rng.IntN(4) == 0 {
			sym = " " + strings.ToLower(sym) // feed A's symbols are not always clean
		}
		return Record{
			Feed: FeedA, TradeID: id, MsgID: id, Valid: true,
			Data: marshal(map[string]any{"id": id, "sym": sym, "px": price, "size": size, "ts": g.now.UnixMilli()}),
		}
	}
	id := fmt.Sprintf("XB-%d-%d", g.now.UnixMilli(), g.n)
	ts := g.now.Format("2006-01-02T15:04:05.000Z07:00")
	if g.rng.IntN(4) == 0 {
		ts = g.now.In(time.FixedZone("", 3600)).Format("2006-01-02T15:04:05.000Z07:00") // same instant, another offset
	}
	return Record{Feed: FeedB, TradeID: id, MsgID: id, Valid: true, Data: marshal(map[string]any{
		"instrument": map[string]any{"ticker": strings.ToLower(sym), "venue": "XB"},
		"trade":      map[string]any{"id": id, "price": json.Number(price), "qty": size},
		"time":       ts,
	})}
}

// invalid returns a record the pipeline dead-letters, one of several kinds.
func (g *Generator) invalid() Record {
	ms := g.now.UnixMilli()
	id := fmt.Sprintf("bad-%d-%d", ms, g.n)
	r := Record{MsgID: id}
	switch g.rng.IntN(6) {
	case 0: // negative price
		r.Feed = FeedA
		r.Data = marshal(map[string]any{"id": id, "sym": "AAPL", "px": "-1.25", "size": 10, "ts": ms})
	case 1: // not a symbol
		r.Feed = FeedB
		r.Data = marshal(map[string]any{
			"instrument": map[string]any{"ticker": "??", "venue": "XB"},
			"trade":      map[string]any{"id": id, "price": json.Number("10.00"), "qty": 10}, "time": g.now.Format(time.RFC3339Nano),
		})
	case 2: // no size
		r.Feed = FeedB
		r.Data = marshal(map[string]any{
			"instrument": map[string]any{"ticker": "MSFT", "venue": "XB"},
			"trade":      map[string]any{"id": id, "price": json.Number("10.00")}, "time": g.now.Format(time.RFC3339Nano),
		})
	case 3: // a price that is not a number
		r.Feed = FeedA
		r.Data = marshal(map[string]any{"id": id, "sym": "NVDA", "px": "12,50", "size": 10, "ts": ms})
	case 4: // neither feed's shape
		r.Data = marshal(map[string]any{"ticker": "TSLA", "last": 245.1, "at": ms})
	default: // cut off mid-record
		r.Feed = FeedA
		r.Data = []byte(fmt.Sprintf(`{"id":%q,"sym":"AAPL","px":`, id))
	}
	return r
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func marshal(v map[string]any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and numbers always encode
	}
	return b
}
