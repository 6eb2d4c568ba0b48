package metrics

import "github.com/prometheus/client_golang/prometheus"

// ContractFields counts the schema contract's decisions on clean records'
// fields that are not schema columns: kept (evolve), dropped
// (discard_columns) or rejected (freeze: the record is dead-lettered).
// Field names come from the data, so each transform handler labels at
// most MaxContractFields of them and counts the rest as OtherField.
var ContractFields = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "jetfleet_contract_fields_total",
	Help: "Fields outside a dataset's schema, by what its contract did with them (kept, dropped, rejected).",
}, []string{"dataset", "field", "decision"})

// MaxContractFields bounds the field names ContractFields labels per
// dataset and decision.
const MaxContractFields = 100

// OtherField labels the fields beyond MaxContractFields.
const OtherField = "_other"
