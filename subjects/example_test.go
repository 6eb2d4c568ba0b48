package subjects_test

import (
	"fmt"

	"github.com/jetfleet/jetfleet/subjects"
)

// The subjects of one dataset's stages, and Parse, their inverse.
func Example_subjects() {
	for _, s := range []string{
		subjects.Ingest("orders"),
		subjects.Valid("orders"),
		subjects.Clean("orders"),
		subjects.DeadLetter("validate", "orders"),
		subjects.Alert("big_order"),
	} {
		p, err := subjects.Parse(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-24s kind %-6s dataset %q step %q rule %q\n", s, p.Kind, p.Dataset, p.Step, p.Rule)
	}
	_, err := subjects.Parse("orders.ingest")
	fmt.Println(err)
	// Output:
	// jf.ingest.orders         kind ingest dataset "orders" step "" rule ""
	// jf.valid.orders          kind valid  dataset "orders" step "" rule ""
	// jf.clean.orders          kind clean  dataset "orders" step "" rule ""
	// jf.dlq.validate.orders   kind dlq    dataset "orders" step "validate" rule ""
	// jf.alert.big_order       kind alert  dataset "" step "" rule "big_order"
	// not a jetfleet subject: "orders.ingest"
}

// Every hop derives the id of what it publishes from the id of what it
// consumed, so a redelivered input published again is dropped by the
// server's de-duplication instead of stored twice.
func Example_derivedIDs() {
	in := "order-42"
	valid := subjects.DeriveMsgID(in, "validate", 0)
	clean := subjects.DeriveMsgID(valid, "transform", 0)
	fmt.Println(valid)
	fmt.Println(clean)
	// A bulk message's outputs are numbered after the first.
	fmt.Println(subjects.DeriveMsgID(in, "validate", 2))
	// The same input always gives the same id.
	fmt.Println(subjects.DeriveMsgID(in, "validate", 0) == valid)
	// Output:
	// order-42/validate
	// order-42/validate/transform
	// order-42/validate#2
	// true
}

// The consumer of a step on a dataset: one durable pull consumer, shared
// by every replica of the step.
func Example_consumer() {
	cfg, err := subjects.Consumer(subjects.StepValidate, "orders", subjects.ConsumerOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Durable, cfg.FilterSubject, subjects.StreamFor(subjects.StepValidate.Input))
	fmt.Println(cfg.AckPolicy, cfg.MaxDeliver, cfg.AckWait)
	// Output:
	// validate_orders jf.ingest.orders JF_INGEST
	// AckExplicit 5 30s
}
