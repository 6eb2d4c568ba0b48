package subjects

import "slices"

// PipelineShape is what of a pipeline its server permissions depend on:
// consumer names and stage subjects hold the dataset, buckets the table.
type PipelineShape struct {
	Name     string
	Datasets []string
	// Lookups are the lookup tables the transforms read.
	Lookups []string
	Alerts  []AlertShape
	// Webhooks are the webhook targets some rule names.
	Webhooks []string
	// Partitions is the clean stage's partition count; default
	// DefaultPartitions.
	Partitions int
}

// AlertShape is one alert rule: record rules run in the alert step, mart
// and anomaly rules beside the aggregator of their dataset.
type AlertShape struct {
	Name, Dataset string
	Record        bool
}

// Role is one server user and what it may do.
type Role struct {
	User string
	// Runs says which jetfleet processes (or clients) log in as it.
	Runs      string
	Publish   []Grant
	Deny      []string
	Subscribe []Grant
	// Responses lets the user answer requests it received (control and
	// micro discovery) on the requester's inbox, and nothing else there.
	Responses bool
}

// Grant is a group of subjects with the reason they are granted.
type Grant struct {
	Why      string
	Subjects []string
}

// Inbox is the reply subject prefix of user: its processes run with
// --inbox-prefix Inbox(user), and only it may subscribe there.
func Inbox(user string) string { return "_INBOX_" + user }

const jsAPI = "$JS.API."

func streamInfos(names ...string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = jsAPI + "STREAM.INFO." + n
	}
	return out
}

// pullConsumer is what a bind-only step needs of its durable: its info
// (bind, probes), fetching and acking. No create: `jetfleet setup` made it.
func pullConsumer(stream, durable string) []string {
	return []string{
		jsAPI + "CONSUMER.INFO." + stream + "." + durable,
		jsAPI + "CONSUMER.MSG.NEXT." + stream + "." + durable,
		"$JS.ACK." + stream + "." + durable + ".>",
	}
}

// readBucket is what watching or reading key-value bucket needs: its
// info, direct gets, and the ordered consumers of watches and key lists.
func readBucket(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		jsAPI + "STREAM.INFO." + s, jsAPI + "DIRECT.GET." + s + ".>", jsAPI + "STREAM.MSG.GET." + s,
		jsAPI + "CONSUMER.CREATE." + s + ".>", jsAPI + "CONSUMER.DELETE." + s + ".>",
	}
}

// writeBucket adds writing keys to readBucket.
func writeBucket(bucket string) []string {
	return append(readBucket(bucket), "$KV."+bucket+".>")
}

// controlOf is what a step's workers take on: both control subjects of
// step, and micro discovery of their own service.
func controlOf(steps ...string) []string {
	out := []string{"$SRV.*"}
	for _, s := range steps {
		out = append(out, ControlStep(s), ControlStep(s)+".*",
			"$SRV.*."+MicroServicePrefix+s, "$SRV.*."+MicroServicePrefix+s+".*")
	}
	return out
}

// Roles are the server users of a pipeline, least privilege each: every
// step may read its own consumers and publish its own output, dead
// letters and heartbeats; it takes only its own step's control subjects
// and answers only requests it received, so it can neither forge another
// step's control reply nor beat for it. Only ops (the admin) creates or
// changes streams, consumers and buckets (`jetfleet setup`). See
// docs/security.md.
func Roles(p PipelineShape) []Role {
	if p.Partitions <= 0 {
		p.Partitions = DefaultPartitions
	}
	stages := []string{StreamIngest, StreamValid, StreamClean, StreamDLQ, StreamAlerts, StreamAdvisories}
	lookUpStreams := Grant{"the stage streams: look up, never create, change or delete (jetfleet setup made them)", streamInfos(stages...)}
	perDataset := func(subjectsFunc func(ds string) []string) []string {
		var out []string
		for _, ds := range p.Datasets {
			out = append(out, subjectsFunc(ds)...)
		}
		return out
	}
	landing := "OBJ_" + LandingBucket
	alertSubjects := func(record bool) []string {
		var out []string
		for _, a := range p.Alerts {
			if a.Record == record {
				out = append(out, Alert(a.Name))
			}
		}
		return out
	}
	step := func(user, runs string, steps []string, grants ...Grant) Role {
		r := Role{User: user, Runs: runs, Responses: true}
		r.Publish = append([]Grant{lookUpStreams}, grants...)
		var beats []string
		for _, s := range steps {
			beats = append(beats, Heartbeat(s, "*"))
		}
		r.Publish = append(r.Publish, Grant{"heartbeats of its own step only", beats})
		r.Subscribe = []Grant{
			{"its own step's control subjects (jf.ctl.step.<step> and jf.ctl.step.<step>.<worker>) and micro discovery of its service", controlOf(steps...)},
			{"its replies", []string{Inbox(user) + ".>"}},
		}
		return r
	}

	publisher := Role{
		User: "publisher", Runs: "jetfleet publish, any client sending records",
		Publish: []Grant{
			{"records of every dataset", perDataset(func(ds string) []string { return []string{Ingest(ds)} })},
			{"jetfleet publish --object: upload to the jf-landing object store", []string{jsAPI + "STREAM.INFO." + landing, jsAPI + "DIRECT.GET." + landing + ".>", "$O." + LandingBucket + ".>"}},
		},
		Subscribe: []Grant{{"its replies (publish acks)", []string{Inbox("publisher") + ".>"}}},
	}

	ingest := step("ingest", "jetfleet worker ingest", []string{StepIngest.Name},
		Grant{"records of every dataset, and their dead letters", perDataset(func(ds string) []string { return []string{Ingest(ds), DeadLetter(StepIngest.Name, ds)} })},
		Grant{"the landing bucket: watch, read, rename and delete processed files", []string{
			jsAPI + "STREAM.INFO." + landing, jsAPI + "CONSUMER.CREATE." + landing + ".>", jsAPI + "CONSUMER.DELETE." + landing + ".>",
			jsAPI + "STREAM.MSG.GET." + landing, jsAPI + "DIRECT.GET." + landing + ".>", jsAPI + "STREAM.PURGE." + landing, "$O." + LandingBucket + ".>",
		}},
	)

	validate := step("validate", "jetfleet worker validate", []string{StepValidate.Name},
		Grant{"its consumers on JF_INGEST", perDataset(func(ds string) []string {
			return pullConsumer(StreamIngest, ConsumerName(StepValidate.Name, ds))
		})},
		Grant{"valid records and dead letters", perDataset(func(ds string) []string {
			return []string{Valid(ds), DeadLetter(StepValidate.Name, ds)}
		})},
	)

	var lookups []string
	for _, t := range p.Lookups {
		lookups = append(lookups, readBucket(LookupBucket(t))...)
	}
	transform := step("transform", "jetfleet worker transform (and a step in another language that replaces it)", []string{StepTransform.Name},
		Grant{"its consumers on JF_VALID", perDataset(func(ds string) []string {
			return pullConsumer(StreamValid, ConsumerName(StepTransform.Name, ds))
		})},
		Grant{"clean records (with or without their key token) and dead letters", perDataset(func(ds string) []string {
			return []string{Clean(ds), Clean(ds) + ".*", DeadLetter(StepTransform.Name, ds)}
		})},
	)
	if len(lookups) > 0 {
		transform.Publish = append(transform.Publish, Grant{"lookup tables: read and watch, never write", lookups})
	}

	aggCons := perDataset(func(ds string) []string {
		var out []string
		for k := range p.Partitions {
			out = append(out, pullConsumer(StreamClean, PartitionConsumerName(StepAggregate.Name, ds, k))...)
		}
		return append(out, pullConsumer(StreamClean, ConsumerName(StepRekey.Name, ds))...)
	})
	aggregate := step("aggregate", "jetfleet worker aggregate (with the rekey step and mart alert rules)", []string{StepAggregate.Name, StepRekey.Name},
		Grant{"its consumers on JF_CLEAN: one per key partition, and rekey's", aggCons},
		Grant{"rekey: clean records again with their key token; dead letters", perDataset(func(ds string) []string {
			return []string{Clean(ds) + ".*", DeadLetter(StepAggregate.Name, ds), DeadLetter(StepRekey.Name, ds)}
		})},
		Grant{"aggregate --claim: partition leases", writeBucket(PartitionBucket)},
	)
	if mart := alertSubjects(false); len(mart) > 0 {
		aggregate.Publish = append(aggregate.Publish,
			Grant{"mart and anomaly alert rules run after each flush", mart},
			Grant{"alert cooldowns and evaluation marks", writeBucket(AlertsBucket)})
	}

	var roles []Role
	roles = append(roles, publisher, ingest, validate, transform, aggregate)
	if len(p.Alerts) > 0 {
		var alertCons, dlq []string
		for _, ds := range p.Datasets {
			if slices.ContainsFunc(p.Alerts, func(a AlertShape) bool { return a.Record && a.Dataset == ds }) {
				alertCons = append(alertCons, pullConsumer(StreamClean, ConsumerName(StepAlert.Name, ds))...)
				dlq = append(dlq, DeadLetter(StepAlert.Name, ds))
			}
		}
		for _, w := range p.Webhooks {
			alertCons = append(alertCons, pullConsumer(StreamAlerts, ConsumerName(StepWebhook.Name, w))...)
			dlq = append(dlq, DeadLetter(StepWebhook.Name, w))
		}
		alert := step("alert", "jetfleet worker alert: record rules and webhook deliveries", []string{StepAlert.Name, StepWebhook.Name},
			Grant{"its consumers: record rules on JF_CLEAN, webhook targets on JF_ALERTS", alertCons},
			Grant{"alerts of record rules, and dead letters", append(alertSubjects(true), dlq...)},
			Grant{"alert cooldowns", writeBucket(AlertsBucket)},
		)
		roles = append(roles, alert)
	}

	supervisor := Role{
		User: "supervisor", Runs: "jetfleet supervisor", Responses: true,
		Publish: []Grant{
			lookUpStreams,
			{"readiness (supervisor --http)", []string{jsAPI + "INFO"}},
			{"advisories kept while no supervisor ran: the supervisors' consumer on JF_ADVISORIES", pullConsumer(StreamAdvisories, ConsumerAdvisories)},
			{"the books in status: ordered consumers reading JF_INGEST's and JF_DLQ's headers (a permission cannot match a name prefix)", []string{
				jsAPI + "CONSUMER.CREATE." + StreamIngest + ".*", jsAPI + "CONSUMER.MSG.NEXT." + StreamIngest + ".*", jsAPI + "CONSUMER.DELETE." + StreamIngest + ".*",
				jsAPI + "CONSUMER.CREATE." + StreamDLQ + ".*", jsAPI + "CONSUMER.MSG.NEXT." + StreamDLQ + ".*", jsAPI + "CONSUMER.DELETE." + StreamDLQ + ".*",
			}},
			{"fleet state", writeBucket(FleetBucket)},
			{"lag and dead letters: consumer info, and copying a message JetStream gave up on", []string{
				jsAPI + "CONSUMER.LIST.*", jsAPI + "CONSUMER.NAMES.*", jsAPI + "CONSUMER.INFO.*.*",
				jsAPI + "STREAM.MSG.GET." + StreamIngest, jsAPI + "STREAM.MSG.GET." + StreamValid, jsAPI + "STREAM.MSG.GET." + StreamClean,
				jsAPI + "STREAM.MSG.GET." + StreamDLQ, jsAPI + "DIRECT.GET.>",
			}},
			{"files waiting in the landing bucket (status): list only", []string{jsAPI + "STREAM.INFO." + landing, jsAPI + "CONSUMER.CREATE." + landing + ".>", jsAPI + "CONSUMER.DELETE." + landing + ".>"}},
			{"dead letters, pings to every step, its events", []string{AllDeadLetters, AllControl, AllSupervisor}},
		},
		Subscribe: []Grant{
			{"heartbeats, supervisor requests, consumer advisories", []string{AllHeartbeats, AllSupervisor, "$JS.EVENT.ADVISORY.CONSUMER.>"}},
			{"its replies", []string{Inbox("supervisor") + ".>"}},
			{"micro discovery of its service", []string{"$SRV.*", "$SRV.*." + MicroServicePrefix + "supervisor", "$SRV.*." + MicroServicePrefix + "supervisor.*"}},
		},
	}
	ops := Role{
		User: "ops", Runs: "the admin: jetfleet setup, status, dlq, ctl, alerts, lookup load, nats micro",
		Publish: []Grant{
			{"JetStream: create and update streams, consumers and buckets (setup), read everything", []string{jsAPI + "INFO", jsAPI + "STREAM.>", jsAPI + "CONSUMER.>", jsAPI + "DIRECT.GET.>", "$KV.>", "$O.>"}},
			{"dlq replay, control requests, supervisor requests", []string{join(Root, string(KindIngest), ">"), AllControl, AllSupervisor}},
			{"nats micro ls|info|stats", []string{"$SRV.>"}},
		},
		Deny: []string{jsAPI + "STREAM.DELETE.>", jsAPI + "STREAM.PURGE.>"},
		Subscribe: []Grant{
			{"heartbeats (jetfleet ctl checks who answers), supervisor events, its replies", []string{AllHeartbeats, AllSupervisor, Inbox("ops") + ".>"}},
		},
	}
	return append(roles, supervisor, ops)
}

// RoleUsers lists the users of roles, in order.
func RoleUsers(roles []Role) []string {
	out := make([]string, len(roles))
	for i, r := range roles {
		out[i] = r.User
	}
	return out
}
