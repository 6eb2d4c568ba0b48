package supervisor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The fleet is not idle while the ledger has not counted the last
// messages of JF_INGEST or JF_DLQ: a dead letter the supervisor stored a
// moment ago (a message that ran out of deliveries) would be missing from
// the books --wait-idle reports. Other in-flight notes are the steps'
// business (their pending counts), not the books'.
func TestIdleWaitsForTheLedger(t *testing.T) {
	t.Parallel()
	st := &Status{Balance: []DatasetBalance{{Dataset: "orders", State: BalanceInFlight, Note: "counting JF_DLQ (seq 3 of 4)", counting: true}}}
	require.Equal(t, "orders: counting JF_DLQ (seq 3 of 4)", st.Busy())

	st.Balance[0] = DatasetBalance{Dataset: "orders", State: BalanceInFlight, Note: "no aggregate consumer: clean records wait in JF_CLEAN"}
	require.Empty(t, st.Busy())
	st.Balance[0] = DatasetBalance{Dataset: "orders", State: BalanceBalanced}
	require.Empty(t, st.Busy())
}
