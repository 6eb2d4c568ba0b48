package main

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/jetfleet/jetfleet/bench"
	"github.com/jetfleet/jetfleet/examples/marketgen"
	"github.com/jetfleet/jetfleet/pipeline"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers/ingest"
)

// demo is sample data `jetfleet dev --demo` can publish, for the
// pipelines it fits.
type demo struct {
	what     string // for logs: "shop orders"
	detail   string // for the start banner: what to expect of the data
	dataset  string
	fitsFunc func(*pipeline.Spec) bool
	// newNextFunc returns the generator: each call gives one record and
	// its message id.
	newNextFunc func() func() (data []byte, msgID string)
}

var demos = []demo{
	{
		what: "shop orders", dataset: "orders",
		detail:   "about 5% invalid (dead-lettered with the reason) and 2% repeated order ids (counted once)",
		fitsFunc: func(s *pipeline.Spec) bool { ds := s.Dataset("orders"); return ds != nil && ds.Key == "order_id" },
		newNextFunc: func() func() ([]byte, string) {
			gen := bench.NewOrderGenerator(uint64(time.Now().UnixNano()), 0.05, 0.02)
			gen.Start = time.Now().UTC().Add(-24 * time.Hour)
			return func() ([]byte, string) {
				line, _ := gen.Next()
				// The id `jetfleet publish --id-field order_id` gives it.
				if id, ok := ingest.KeyID("orders", line, "order_id"); ok {
					return line, id
				}
				return line, subjects.HashID(string(line))
			}
		},
	},
	{
		what: "market ticks from two feeds", dataset: marketgen.Dataset,
		detail: "about 3% invalid and 3% replayed by the feeds, event time from three hours ago",
		fitsFunc: func(s *pipeline.Spec) bool {
			ds := s.Dataset(marketgen.Dataset)
			return ds != nil && ds.Key == "trade_id" && len(ds.Sources) > 0
		},
		newNextFunc: func() func() ([]byte, string) {
			// Event time runs from three hours ago at about ten times the
			// default publish rate, so bars and indicators fill in quickly.
			gen := marketgen.New(marketgen.Config{
				Seed: uint64(time.Now().UnixNano()), Start: time.Now().UTC().Add(-3 * time.Hour).Truncate(time.Minute),
				Step: 2 * time.Second, InvalidShare: 0.03, ReplayShare: 0.03,
			})
			return func() ([]byte, string) {
				r := gen.Next()
				return r.Data, r.MsgID
			}
		},
	},
}

// pickDemo finds the demo data that fits spec.
func pickDemo(spec *pipeline.Spec) (demo, bool) {
	for _, d := range demos {
		if d.fitsFunc(spec) {
			return d, true
		}
	}
	return demo{}, false
}

// demoNames lists what --demo can publish, for the warning when nothing fits.
func demoNames() string {
	names := make([]string, len(demos))
	for i, d := range demos {
		names[i] = d.what + " (dataset " + d.dataset + ")"
	}
	return strings.Join(names, ", ")
}

// runDemo publishes d's records at rate per second until ctx ends.
func runDemo(ctx context.Context, js jetstream.JetStream, d demo, rate float64, log zerolog.Logger) {
	if rate <= 0 {
		rate = 5
	}
	next := d.newNextFunc()
	t := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer t.Stop()
	log = log.With().Str("component", "demo").Str("dataset", d.dataset).Logger()
	log.Debug().Float64("rate", rate).Msg("publishing demo " + d.what) // the start banner says so
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, id := next()
		m := nats.NewMsg(subjects.Ingest(d.dataset))
		m.Data = data
		m.Header.Set(subjects.HeaderMsgID, id)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.PublishMsg(pctx, m)
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("demo publish")
		}
	}
}
