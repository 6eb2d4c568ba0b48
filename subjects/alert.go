package subjects

import (
	"github.com/nats-io/nats.go/jetstream"
)

// StepWebhook delivers alerts to one webhook target. Its consumer,
// webhook_<target>, reads JF_ALERTS filtered to the rules that name the
// target; the target's name stands where other steps have a dataset.
var StepWebhook = Step{Name: "webhook", Input: KindAlert}

// AllAlerts matches every alert subject.
var AllAlerts = join(Root, string(KindAlert), ">")

// AlertsBucket is the KV bucket of alert state shared by every replica and
// restart: the cooldown of each rule and key, the records an anomaly rule
// has alerted on, and which flush of a mart each mart rule last saw.
const AlertsBucket = "jf_alerts"

// Key prefixes of the alerts bucket.
const (
	KeyPrefixCooldown = "cool" // cool.<rule>.<key>: last alert time, suppressed count
	KeyPrefixSeen     = "seen" // seen.<rule>.<record>: an anomaly already alerted on
	KeyPrefixEval     = "eval" // eval.<rule>: the mart flush a mart rule last evaluated
)

// KeyCooldown is the cooldown entry of rule for key ("" for the rule's
// single cooldown). Keys are encoded like lookup keys.
func KeyCooldown(rule, key string) string { return join(KeyPrefixCooldown, rule, LookupKey(key)) }

// KeySeen marks record as alerted on by anomaly rule.
func KeySeen(rule, record string) string { return join(KeyPrefixSeen, rule, LookupKey(record)) }

// KeyEval is where mart rule rule notes the flush it last evaluated.
func KeyEval(rule string) string { return join(KeyPrefixEval, rule) }

// AlertsKV is the alerts bucket's configuration: one revision per key,
// updated with compare-and-set.
func AlertsKV(o StreamOptions) jetstream.KeyValueConfig {
	o.setDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      AlertsBucket,
		Description: "jetfleet: alert cooldowns and evaluation marks",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
}

// AlertMsgID is the id of the alert rule fires for the input (or mart
// flush) identified by source: the same input always yields the same id,
// so a redelivery or a re-evaluated flush is stored once.
func AlertMsgID(source, rule string, index int) string {
	return DeriveMsgID(source, "alert."+rule, index)
}

// DeadLetterStep is the step token of a dead letter's id for step on
// dataset. Webhook deliverers of different targets read the same alert,
// so theirs names the target too; a dead letter per target is kept.
func DeadLetterStep(step, dataset string) string {
	if step == StepWebhook.Name {
		return step + "." + dataset
	}
	return step
}
