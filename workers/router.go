package workers

import (
	"fmt"

	"github.com/jetfleet/jetfleet/workers/message"
	"github.com/jetfleet/jetfleet/workers/middleware"
)

// router is a worker's handler chain: the step's handler, adapted to
// batches, inside the runtime's middleware (see package middleware). It
// is rebuilt with a new handler after a crash.
type router struct {
	handle message.HandlerFunc
	// batch says the handler takes batches of messages (a sink), which
	// the fetch loop gathers up to FetchBatch within BatchWait.
	batch bool
}

// retryConfig is the redelivery policy of the worker's messages.
func (w *Worker) retryConfig() middleware.RetryConfig {
	return middleware.RetryConfig{MaxDeliver: w.maxDeliver, BackoffMin: w.cfg.RetryBackoffMin, BackoffMax: w.cfg.RetryBackoffMax}
}

// newRouter builds the step's handler and wraps it. The order is the
// ack decision's: Retry sees what Recover made of a panic, Metrics times
// the handler alone, Timeout gives it its deadline.
func (w *Worker) newRouter() (*router, error) {
	r := &router{}
	var h message.HandlerFunc
	if w.cfg.NewBatchHandlerFunc != nil {
		bh, err := w.cfg.NewBatchHandlerFunc()
		if err != nil {
			return nil, fmt.Errorf("build %s handler: %w", w.cfg.Step.Name, err)
		}
		h, r.batch = batchHandler(bh), true
	} else {
		rh, err := w.cfg.NewHandlerFunc()
		if err != nil {
			return nil, fmt.Errorf("build %s handler: %w", w.cfg.Step.Name, err)
		}
		h = recordHandler(rh)
		if cr, ok := rh.(ContractReporter); ok {
			w.reporter.Store(&cr)
		}
	}
	mw := []message.Middleware{
		middleware.Trace(),
		middleware.Retry(w.retryConfig()),
		middleware.Recover(),
		middleware.Metrics(middleware.MetricsConfig{Seconds: w.handlerSeconds, Records: &w.stats.records}),
		middleware.Timeout(w.cfg.HandlerTimeout, w.cfg.Consumer.AckWait/3),
	}
	r.handle = message.Chain(h, append(mw, w.cfg.Middleware...)...)
	return r, nil
}
