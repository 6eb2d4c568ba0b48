// jetfleet's wire contract in JavaScript: the subjects, headers, consumer
// settings, message ids and heartbeat body a step outside jetfleet uses.
// docs/wire.md is the reference; this file only depends on node itself, so
// a test can check it against the Go code without installing anything.
"use strict";

const crypto = require("node:crypto");
const os = require("node:os");

const ROOT = "jf";

const subjects = {
  ingest: (dataset) => `${ROOT}.ingest.${dataset}`,
  valid: (dataset) => `${ROOT}.valid.${dataset}`,
  clean: (dataset) => `${ROOT}.clean.${dataset}`,
  deadLetter: (step, dataset) => `${ROOT}.dlq.${step}.${dataset}`,
  heartbeat: (step, worker) => `${ROOT}.hb.${step}.${worker}`,
  control: (worker) => `${ROOT}.ctl.${worker}`,
  controlStep: (step) => `${ROOT}.ctl.step.${step}`,
};

const streams = { ingest: "JF_INGEST", valid: "JF_VALID", clean: "JF_CLEAN", dlq: "JF_DLQ" };

// The built-in steps a program may take over: where each reads and writes.
const steps = {
  validate: { stream: streams.ingest, input: subjects.ingest, output: subjects.valid },
  transform: { stream: streams.valid, input: subjects.valid, output: subjects.clean },
};

const headers = {
  msgId: "Nats-Msg-Id",
  traceParent: "traceparent",
  records: "Jf-Records",
  origSubject: "Jf-Orig-Subject",
  origStream: "Jf-Orig-Stream",
  origSeq: "Jf-Orig-Seq",
  origMsgId: "Jf-Orig-Msg-Id",
  deliveries: "Jf-Deliveries",
  consumer: "Jf-Consumer",
  step: "Jf-Step",
  worker: "Jf-Worker",
  reason: "Jf-Reason",
  recordIndex: "Jf-Record-Index",
  failedAt: "Jf-Failed-At",
};

// A Term reason starting with this tells the supervisor the step has
// dead-lettered the message itself, so it is not copied a second time.
const TERM_REASON_DEAD_LETTERED = "jf: dead-lettered: ";

const MAX_MSG_ID_BYTES = 128;

// hashId is "h:" and the first 20 bytes of the SHA-256 of s, in hex.
function hashId(s) {
  return "h:" + crypto.createHash("sha256").update(s, "utf8").digest("hex").slice(0, 40);
}

// deriveMsgId is the id of output number index (0-based, per input
// message) of step, made from the input's id: "<upstream>/<step>", with
// "#<index>" for index > 0; longer than 128 bytes (UTF-8), it is hashed.
function deriveMsgId(upstream, step, index) {
  let id = `${upstream}/${step}`;
  if (index !== 0) {
    id += `#${index}`;
  }
  if (Buffer.byteLength(id, "utf8") > MAX_MSG_ID_BYTES) {
    return hashId(id);
  }
  return id;
}

// deadLetterMsgId is the id of the dead letter of record index.
function deadLetterMsgId(upstream, step, index) {
  return deriveMsgId(upstream, `dlq.${step}`, index);
}

// sequenceMsgId names an input that was published without a Nats-Msg-Id.
function sequenceMsgId(stream, seq) {
  return `${stream}:${seq}`;
}

// consumerName is the durable every replica of step on dataset shares.
function consumerName(step, dataset) {
  return `${step}_${dataset}`;
}

// consumerConfig is the durable pull consumer of step on dataset, as the
// Go workers create it (subjects.Consumer): create-or-update it with this,
// never with other settings, or the two sides fight over it.
function consumerConfig(step, dataset, opts = {}) {
  const s = steps[step];
  if (!s) {
    throw new Error(`step ${step} cannot run outside jetfleet (validate or transform)`);
  }
  return {
    durable_name: consumerName(step, dataset),
    description: `jetfleet ${step} step for dataset ${dataset}`,
    filter_subject: s.input(dataset),
    deliver_policy: "all",
    ack_policy: "explicit",
    ack_wait: (opts.ackWaitMs || 30000) * 1e6, // nanoseconds
    max_deliver: opts.maxDeliver || 5,
    max_ack_pending: opts.maxAckPending || 1024,
    max_waiting: 512,
    metadata: { "jf.step": step, "jf.dataset": dataset },
  };
}

// splitBulk returns the records of a message: the NDJSON lines of a bulk
// message (one with a Jf-Records header; empty lines skipped, a trailing
// \r dropped), or the whole body as one record.
function splitBulk(hdrs, body) {
  if (!hdrs || !hdrs.get(headers.records)) {
    return { records: [body], bulk: false };
  }
  const records = [];
  let start = 0;
  while (start < body.length) {
    let end = body.indexOf(0x0a, start);
    if (end < 0) {
      end = body.length;
    }
    let line = body.subarray(start, end);
    if (line.length > 0 && line[line.length - 1] === 0x0d) {
      line = line.subarray(0, line.length - 1);
    }
    if (line.toString("utf8").trim() !== "") {
      records.push(line);
    }
    start = end + 1;
  }
  return { records, bulk: true };
}

// joinBulk is the body of a bulk message: one record per line.
function joinBulk(records) {
  return Buffer.from(records.join("\n"), "utf8");
}

// cleanReason makes an error text a header value: one line, no control
// characters, at most 1024 bytes.
function cleanReason(s) {
  let out = String(s).replace(/[\r\n\t]/g, " ").replace(/[\x00-\x1f\x7f]/g, "");
  const b = Buffer.from(out, "utf8");
  if (b.length > 1024) {
    out = b.subarray(0, 1024).toString("utf8").replace(/\uFFFD+$/, "") + "...";
  }
  return out;
}

// childTraceParent continues the W3C trace of the input with a span id
// derived from the input's id (so a redelivery carries the same trace), or
// starts a trace derived from it when the input has none.
function childTraceParent(parent, inputId) {
  const sum = crypto.createHash("sha256").update(inputId, "utf8").digest("hex");
  const span = sum.slice(32, 48);
  if (parent && parent.length === 55 && parent[2] === "-" && parent[35] === "-" && parent[52] === "-") {
    return parent.slice(0, 36) + span + parent.slice(52);
  }
  return `00-${sum.slice(0, 32)}-${span}-01`;
}

// newWorkerId is unique in the fleet and a valid subject token.
function newWorkerId(tag) {
  const host = os.hostname().replace(/[^A-Za-z0-9_-]/g, "-").replace(/^[-_]+|[-_]+$/g, "").slice(0, 24);
  const suffix = crypto.randomBytes(4).toString("hex");
  return `${host || "w"}-${tag}-${suffix}`;
}

// Heartbeat keeps a worker's counters and builds its heartbeat body, the
// JSON the Go workers publish (subjects.Beat).
class Heartbeat {
  constructor({ worker, step, dataset, version, intervalMs, extra }) {
    this.base = {
      worker,
      step,
      dataset,
      consumer: consumerName(step, dataset),
      host: os.hostname(),
      pid: process.pid,
      version,
      started: new Date().toISOString(),
    };
    this.intervalMs = intervalMs;
    this.extra = extra;
    this.state = "starting";
    this.inFlight = 0;
    this.lastError = "";
    this.counters = { messages: 0, records: 0, outputs: 0, dead_lettered: 0, retried: 0, redelivered: 0, crashes: 0, acked: 0 };
  }

  body() {
    const b = {
      ...this.base,
      time: new Date().toISOString(),
      interval_ms: this.intervalMs,
      state: this.state,
      in_flight: this.inFlight,
      counters: { ...this.counters },
    };
    if (this.lastError) {
      b.last_error = this.lastError;
    }
    if (this.extra) {
      b.extra = this.extra;
    }
    return b;
  }
}

module.exports = {
  subjects,
  streams,
  steps,
  headers,
  TERM_REASON_DEAD_LETTERED,
  hashId,
  deriveMsgId,
  deadLetterMsgId,
  sequenceMsgId,
  consumerName,
  consumerConfig,
  splitBulk,
  joinBulk,
  cleanReason,
  childTraceParent,
  newWorkerId,
  Heartbeat,
};
