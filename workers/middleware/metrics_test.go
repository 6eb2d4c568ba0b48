package middleware_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/jetfleet/jetfleet/workers/message"
	"github.com/jetfleet/jetfleet/workers/middleware"
)

func TestMetrics(t *testing.T) {
	t.Parallel()
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h"})
	var records atomic.Int64
	mw := middleware.Metrics(middleware.MetricsConfig{Seconds: hist, Records: &records})
	b := &message.Batch{Deliveries: []*message.Delivery{{Lines: make([][]byte, 5)}}, Rejects: []message.Reject{{Index: 1}}}
	require.NoError(t, message.Chain(handlerOf(nil, nil), mw)(t.Context(), b))
	require.Error(t, message.Chain(handlerOf(errors.New("transient"), nil), mw)(t.Context(), b))
	require.Equal(t, int64(4), records.Load(), "records handled and not rejected, from the batch that did not fail")
	var m dto.Metric
	require.NoError(t, hist.Write(&m))
	require.Equal(t, uint64(2), m.GetHistogram().GetSampleCount(), "every call is timed, failed or not")
}
