// Package validate is the validate step: it reads the records of a dataset
// from jf.ingest.<dataset>, checks each against the dataset's rules, and
// forwards the ones that pass, unchanged, to jf.valid.<dataset>. A record
// that fails is dead-lettered with every failed rule in its reason; bytes
// that are not a UTF-8 JSON object are dead-lettered with what is wrong.
//
// A dataset with sources (records arriving in several shapes) is the one
// exception to "unchanged": each record is first mapped to the dataset's
// shape by its source, the rules check the mapped record, and that is what
// is forwarded; a record no source matches is dead-lettered.
//
// Rules never change a record: a rule's normalisations (trim, upper) only
// shape the value it checks. The transform step applies them for real.
//
// # Usage
//
//	h, err := validate.New(spec.Dataset("orders"))
//	w, err := workers.New(workers.Config{
//		Conn: nc, Step: subjects.StepValidate, Dataset: "orders",
//		NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
//	})
//
// A Handler holds no mutable state, so one value may serve every worker.
package validate
