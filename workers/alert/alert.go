package alert

import (
	"encoding/json"
	"time"
)

// Alert is the JSON body of a message on jf.alert.<rule>, and what a
// webhook receives.
type Alert struct {
	// ID is the alert's Nats-Msg-Id; webhooks get it as Idempotency-Key.
	ID   string `json:"id"`
	Rule string `json:"rule"`
	// Kind is record, mart or anomaly.
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Dataset  string `json:"dataset"`
	Mart     string `json:"mart,omitempty"`
	// Key is the value of the rule's key expression the cooldown is kept
	// for; absent when the rule has one cooldown.
	Key string `json:"key,omitempty"`
	// Time is when what the alert is about happened: the record's event
	// time, or the mart flush's time.
	Time time.Time `json:"time"`
	// FiredAt is when the alert was published.
	FiredAt time.Time `json:"fired_at"`
	Message string    `json:"message"`
	// Suppressed counts matches of the rule and key that the cooldown held
	// back since the previous alert.
	Suppressed int64   `json:"suppressed"`
	Context    Context `json:"context"`
}

// Context is what made the rule fire.
type Context struct {
	// Record is the clean record of a record rule.
	Record json.RawMessage `json:"record,omitempty"`
	// Subject, Seq and MsgID locate the record in JF_CLEAN.
	Subject string `json:"subject,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	MsgID   string `json:"msg_id,omitempty"`
	// Rows are the mart rows of a mart or anomaly rule (at most MaxRows),
	// RowCount how many there were.
	Rows     []json.RawMessage `json:"rows,omitempty"`
	RowCount int               `json:"row_count,omitempty"`
	// LastSeq is the JF_CLEAN sequence the mart flush had folded in.
	LastSeq uint64 `json:"last_seq,omitempty"`
}

// MaxRows bounds the mart rows an alert carries.
const MaxRows = 100
