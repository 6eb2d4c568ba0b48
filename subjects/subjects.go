package subjects

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Root is the first token of every jetfleet subject.
const Root = "jf"

// Kind is the second token of a jetfleet subject: what the message is.
type Kind string

const (
	KindIngest    Kind = "ingest"
	KindValid     Kind = "valid"
	KindClean     Kind = "clean"
	KindDLQ       Kind = "dlq"
	KindAlert     Kind = "alert"
	KindHeartbeat Kind = "hb"
	KindControl   Kind = "ctl"
	KindSup       Kind = "sup"
)

// MaxTokenLen bounds a name used as a subject token; it keeps consumer
// names (step_dataset) well under the server's limits.
const MaxTokenLen = 64

// ValidateToken reports whether name can be used as one subject token:
// a dataset, step, worker or rule name. Allowed are ASCII letters, digits,
// '_' and '-', starting with a letter or digit. Wildcards, dots and
// whitespace would change the meaning of subjects and are refused.
func ValidateToken(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s name is empty", ErrInvalidToken, what)
	}
	if len(name) > MaxTokenLen {
		return fmt.Errorf("%w: %s name %q is longer than %d characters", ErrInvalidToken, what, truncate(name), MaxTokenLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			if !utf8.ValidString(name) {
				return fmt.Errorf("%w: %s name is not valid UTF-8", ErrInvalidToken, what)
			}
			return fmt.Errorf("%w: %s name %q: character %q at %d (use letters, digits, '_' and '-')", ErrInvalidToken, what, name, rune(c), i)
		}
	}
	return nil
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

func join(tokens ...string) string { return strings.Join(tokens, ".") }

// Ingest is the subject clients publish raw records of dataset to.
func Ingest(dataset string) string { return join(Root, string(KindIngest), dataset) }

// Valid is the subject of records of dataset that passed validation.
func Valid(dataset string) string { return join(Root, string(KindValid), dataset) }

// Clean is the subject of transformed records of dataset.
func Clean(dataset string) string { return join(Root, string(KindClean), dataset) }

// DeadLetter is the subject of records of dataset that step gave up on.
func DeadLetter(step, dataset string) string { return join(Root, string(KindDLQ), step, dataset) }

// Alert is the subject an alert rule fires on.
func Alert(rule string) string { return join(Root, string(KindAlert), rule) }

// Heartbeat is the subject a worker beats on.
func Heartbeat(step, worker string) string { return join(Root, string(KindHeartbeat), step, worker) }

// Control is the subject one worker of step takes control requests on,
// jf.ctl.step.<step>.<worker>. It sits under its step's subject so that a
// server permission per step (jf.ctl.step.<step> and
// jf.ctl.step.<step>.*) covers every worker of the step and nothing else:
// a worker id alone could not be confined to a role.
func Control(step, worker string) string {
	return join(Root, string(KindControl), "step", step, worker)
}

// Supervisor is a supervisor request or event subject, jf.sup.<name>.
func Supervisor(name string) string { return join(Root, string(KindSup), name) }

// Wildcards used by subscribers that watch the whole fleet.
var (
	AllHeartbeats  = join(Root, string(KindHeartbeat), ">")
	AllDeadLetters = join(Root, string(KindDLQ), ">")
	AllControl     = join(Root, string(KindControl), ">")
	AllSupervisor  = join(Root, string(KindSup), ">")
	SupEvents      = Supervisor("events")
	// SupStatus is a request for the fleet status (the JSON of
	// `jetfleet status --json`), answered by a running supervisor.
	SupStatus = Supervisor("status")
)

// Parsed is a jetfleet subject taken apart.
type Parsed struct {
	Kind    Kind
	Dataset string // ingest, valid, clean, dlq
	// KeyToken is set on a clean subject with a key token; Partition
	// and Partitioned on one the stream mapped into its partition.
	KeyToken    string
	Partition   int
	Partitioned bool
	Step        string // dlq, hb, ctl
	Worker      string // hb, ctl (one worker)
	Rule        string // alert
	Name        string // sup
}

// Parse takes a concrete (wildcard-free) jetfleet subject apart. It is the
// inverse of the builders above: Parse(Ingest(d)) gives {KindIngest, d}.
func Parse(subject string) (Parsed, error) {
	tokens := strings.Split(subject, ".")
	if len(tokens) < 3 || tokens[0] != Root {
		return Parsed{}, fmt.Errorf("%w: %q", ErrNotJetfleetSubject, subject)
	}
	for _, t := range tokens[2:] {
		if err := ValidateToken("subject", t); err != nil {
			return Parsed{}, fmt.Errorf("%w: %q: %v", ErrNotJetfleetSubject, subject, err)
		}
	}
	p := Parsed{Kind: Kind(tokens[1])}
	n := len(tokens)
	switch p.Kind {
	case KindClean:
		switch n {
		case 3:
			p.Dataset = tokens[2]
			return p, nil
		case 4:
			p.Dataset, p.KeyToken = tokens[2], tokens[3]
			return p, nil
		case 5:
			part, err := strconv.Atoi(tokens[3])
			if err == nil && part >= 0 && part < MaxPartitions && strconv.Itoa(part) == tokens[3] {
				p.Dataset, p.Partition, p.Partitioned, p.KeyToken = tokens[2], part, true, tokens[4]
				return p, nil
			}
		}
	case KindIngest, KindValid:
		if n == 3 {
			p.Dataset = tokens[2]
			return p, nil
		}
	case KindDLQ:
		if n == 4 {
			p.Step, p.Dataset = tokens[2], tokens[3]
			return p, nil
		}
	case KindHeartbeat:
		if n == 4 {
			p.Step, p.Worker = tokens[2], tokens[3]
			return p, nil
		}
	case KindControl:
		if tokens[2] == "step" && n == 4 {
			p.Step = tokens[3]
			return p, nil
		}
		if tokens[2] == "step" && n == 5 {
			p.Step, p.Worker = tokens[3], tokens[4]
			return p, nil
		}
	case KindAlert:
		if n == 3 {
			p.Rule = tokens[2]
			return p, nil
		}
	case KindSup:
		if n == 3 {
			p.Name = tokens[2]
			return p, nil
		}
	}
	return Parsed{}, fmt.Errorf("%w: %q", ErrNotJetfleetSubject, subject)
}
