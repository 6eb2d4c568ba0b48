package validate_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/examples"
	"github.com/jetfleet/jetfleet/subjects"
	"github.com/jetfleet/jetfleet/workers"
	"github.com/jetfleet/jetfleet/workers/validate"
	"github.com/jetfleet/jetfleet/workers/workertest"
)

// TestWorkerContract runs the worker contract suite on the validate step of the
// shop's orders, built as the fleet builds it.
func TestWorkerContract(t *testing.T) {
	t.Parallel()
	workertest.Run(t, func(t *testing.T, env *workertest.Env) workertest.Step {
		h, err := validate.New(examples.Shop().Dataset("orders"))
		require.NoError(t, err)
		return workertest.Step{
			Config: workers.Config{
				Step: subjects.StepValidate, Dataset: "orders",
				NewHandlerFunc: func() (workers.Handler, error) { return h, nil },
			},
			ValidFunc: func(i int) []byte {
				return fmt.Appendf(nil, `{"order_id":"o-%d","customer_id":"c-1","amount":%d,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`, i, 10+i)
			},
			Invalid:     []byte(`{"order_id":"o-bad","customer_id":"c-1","amount":-1,"currency":"USD","country":"US","ts":"2026-10-01T10:00:00Z"}`),
			Reason:      "amount: -1 is below the minimum 0",
			EffectsFunc: workertest.OutputRecords(env.JS, subjects.Valid("orders")),
		}
	}, workertest.Features{})
}
