// Package subjects is the jetfleet wire contract in one place: the subject
// namespace, the stream and consumer definitions, the header names, and the
// rule that derives the message id of everything a step publishes from the
// id of what it consumed.
//
// # Subjects
//
//	jf.ingest.<dataset>          records as published by any client
//	jf.valid.<dataset>           records that passed validation
//	jf.clean.<dataset>           transformed records, input of the marts
//	jf.dlq.<step>.<dataset>      dead letters, with the reason in headers
//	jf.alert.<rule>              alerts
//	jf.hb.<step>.<worker>        heartbeats (core NATS, not persisted)
//	jf.ctl.step.<step>           control requests to every worker of a step
//	jf.ctl.step.<step>.<worker>  control requests to one worker
//	jf.sup.>                     supervisor requests and events
//
// No other package spells a subject, stream or header name as a literal.
//
// # Streams
//
// [Ensure] creates the five stage streams (JF_INGEST, JF_VALID, JF_CLEAN,
// JF_DLQ, JF_ALERTS) and JF_ADVISORIES (the consumers' advisories, kept
// for the supervisor) or updates their compatible settings. A stream that
// exists with a conflicting shape (other subjects, storage, retention or
// count limits) is reported with [ErrStreamConflict] and left alone. With
// [StreamOptions].BindOnly every Ensure function only looks: what is
// missing is [ErrNotSetUp], for `jetfleet setup` to make.
//
// # Roles
//
// [Roles] are the server users of a pipeline and what each may publish and
// subscribe to, derived from the subjects and consumers above; [ServerConf]
// renders them as a nats-server config (`jetfleet security conf`).
package subjects
