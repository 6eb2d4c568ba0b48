package supervisor

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMergePartitions(t *testing.T) {
	t.Parallel()
	row := func(consumer string, partitions int, pending uint64, delivered, floor uint64) StepStatus {
		return StepStatus{
			Step: "aggregate", Dataset: "orders", Consumer: consumer, Partitions: partitions, consumers: []string{consumer},
			Pending: pending, AckPending: 1, DeliveredSeq: delivered, AckFloorSeq: floor,
		}
	}
	steps := []StepStatus{
		row("aggregate_orders_p0", 1, 2, 10, 8),
		row("aggregate_orders_p1", 1, 3, 30, 29),
		{Step: "aggregate", Dataset: "other", Consumer: "aggregate_other", Pending: 7},
		row("aggregate_orders_p2", 1, 0, 20, 20),
	}
	got := mergePartitions(steps)
	require.Len(t, got, 2)
	m := got[0]
	require.Equal(t, "aggregate_orders_p*", m.Consumer)
	require.Equal(t, 3, m.Partitions)
	require.Equal(t, uint64(5), m.Pending)
	require.Equal(t, 3, m.AckPending)
	require.Equal(t, uint64(30), m.DeliveredSeq, "the highest delivered")
	require.Equal(t, uint64(8), m.AckFloorSeq, "the lowest ack floor")
	require.Equal(t, []string{"aggregate_orders_p0", "aggregate_orders_p1", "aggregate_orders_p2"}, m.consumers)
	require.Equal(t, "aggregate_other", got[1].Consumer, "an unpartitioned consumer stays as it is")
	require.Equal(t, "aggregate_orders_p0", steps[0].Consumer, "the input is not changed")
}
