// Package alert is the alerting half of a pipeline: rules of the
// pipeline file's alerts section fire alerts on jf.alert.<rule> (stream
// JF_ALERTS), and webhook targets receive them over HTTP.
//
//   - [Step] is the handler of the alert step (consumer alert_<dataset> on
//     jf.clean.<dataset>): it evaluates the dataset's record rules on every
//     clean record.
//   - [MartRules] runs mart and anomaly rules in the aggregator's process
//     after each flush of their mart, over the fresh Parquet files.
//   - [Webhook] is the handler of a webhook deliverer (consumer
//     webhook_<target> on JF_ALERTS): it POSTs each alert once, retrying
//     with backoff and dead-lettering what cannot be delivered.
//
// Cooldowns live in the jf_alerts KV bucket and are updated with
// compare-and-set, so they hold across restarts and replicas; a match
// inside a cooldown is counted and reported with the next alert.
// Every alert's Nats-Msg-Id derives from what caused it (the input
// message, or the rule and mart flush), so a redelivery or a re-run
// flush stores it once.
//
// # Usage
//
//	h, err := alert.NewStep(ctx, alert.StepConfig{JS: js, Spec: spec, Dataset: "orders"})
//	w, err := workers.New(workers.Config{Step: subjects.StepAlert, Dataset: "orders",
//		NewHandlerFunc: func() (workers.Handler, error) { return h, nil }, ...})
package alert
