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
  control: (step, worker) => `${ROOT}.ctl.step.${step}.${worker}`,
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

// WHOLE_MESSAGE is the record index of a bulk message's whole-message
// dead letter.
const WHOLE_MESSAGE = -1;

// deadLetterMsgId is the id of the dead letter of record index; a bulk
// message dead-lettered whole (WHOLE_MESSAGE) gets "#all", never the id of
// its first record's dead letter, which an earlier delivery may have stored.
function deadLetterMsgId(upstream, step, index) {
  if (index < 0) {
    return deriveMsgId(upstream, `dlq.${step}#all`, 0);
  }
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

// The NATS micro protocol (ADR-32) as the Go workers serve it (nats.go's
// micro package, workers/micro.go): discovery on $SRV.<verb>,
// $SRV.<verb>.<name> and $SRV.<verb>.<name>.<id>, and the step's two
// control endpoints, neither in a queue group, so that a step-wide request
// reaches every worker. nats.js 2.x's services API puts every endpoint in
// a queue group ("q") and cannot turn that off, hence this small version.
const SERVICE_PREFIX = "jetfleet-";
const ENDPOINT_CONTROL = "control"; // jf.ctl.step.<step>.<worker>
const ENDPOINT_CONTROL_STEP = "control-step"; // jf.ctl.step.<step>

// serviceName is the micro service of every worker of step.
function serviceName(step) {
  return SERVICE_PREFIX + step;
}

// semVer turns a build version into a semantic version as the Go side
// does: "v1.2.3" is 1.2.3, "1.2.3-4-gabc" (git describe) is 1.2.3+4-gabc,
// anything else 0.0.0+<it>.
function semVer(v) {
  v = String(v).trim().replace(/^v/, "");
  const semver = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
  const m = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)/.exec(v);
  const core = m ? m[0] : "0.0.0";
  let rest = m ? v.slice(core.length) : v;
  if (semver.test(v) && !/^-\d+-g[0-9a-f]+(-dirty)?$/.test(rest)) {
    return v;
  }
  rest = rest.replace(/^[-+.]+/, "").replace(/[^0-9A-Za-z-]/g, "-");
  return rest ? `${core}+${rest}` : core;
}

// serviceConfig is the registration of a worker of step: the metadata the
// Go workers give (worker, step, dataset, consumer, host, pid, version:
// the build version its heartbeats carry) plus extra keys (the JavaScript
// step adds its language), and the two control endpoints. The service
// version is serviceVersion, else the build version made semantic.
function serviceConfig({ worker, step, dataset, version, serviceVersion, description, extra = {} }) {
  return {
    name: serviceName(step),
    version: semVer(serviceVersion || version),
    description,
    metadata: {
      ...extra,
      worker,
      step,
      dataset,
      consumer: consumerName(step, dataset),
      host: os.hostname(),
      pid: String(process.pid),
      version: String(version),
    },
    endpoints: [
      { name: ENDPOINT_CONTROL, subject: subjects.control(step, worker) },
      { name: ENDPOINT_CONTROL_STEP, subject: subjects.controlStep(step) },
    ],
  };
}

// MicroService serves cfg (from serviceConfig) on nc, a nats.js
// connection: handle(data) answers a control request with
// { body, error, code } (body null: not addressed to this worker, stay
// silent); statsData() is the stats `data` of every endpoint (the Go
// workers put their heartbeat there). makeHeaders is nats.js' headers().
class MicroService {
  constructor(nc, cfg, { handle, statsData, makeHeaders }) {
    this.nc = nc;
    this.cfg = cfg;
    this.id = crypto.randomBytes(11).toString("hex").toUpperCase();
    this.started = new Date().toISOString();
    this.handle = handle;
    this.statsData = statsData;
    this.makeHeaders = makeHeaders;
    this.subs = [];
    this.stats = cfg.endpoints.map((e) => ({ name: e.name, subject: e.subject, queue_group: "", num_requests: 0, num_errors: 0, last_error: "", processing_time: 0, average_processing_time: 0 }));
  }

  identity(type) {
    return { name: this.cfg.name, id: this.id, version: this.cfg.version, metadata: this.cfg.metadata, type };
  }

  start() {
    const verbs = {
      PING: () => this.identity("io.nats.micro.v1.ping_response"),
      INFO: () => ({
        ...this.identity("io.nats.micro.v1.info_response"),
        description: this.cfg.description,
        endpoints: this.cfg.endpoints.map((e) => ({ name: e.name, subject: e.subject, queue_group: "", metadata: null })),
      }),
      STATS: () => {
        const data = this.statsData();
        return {
          ...this.identity("io.nats.micro.v1.stats_response"),
          started: this.started,
          endpoints: this.stats.map((s) => ({ ...s, data })),
        };
      },
    };
    for (const [verb, body] of Object.entries(verbs)) {
      for (const subject of [`$SRV.${verb}`, `$SRV.${verb}.${this.cfg.name}`, `$SRV.${verb}.${this.cfg.name}.${this.id}`]) {
        this.subs.push(this.nc.subscribe(subject, { callback: (err, msg) => !err && msg.reply && msg.respond(JSON.stringify(body())) }));
      }
    }
    this.cfg.endpoints.forEach((e, i) => {
      this.subs.push(this.nc.subscribe(e.subject, { callback: (err, msg) => !err && this.serve(this.stats[i], msg) }));
    });
  }

  async serve(st, msg) {
    const t0 = process.hrtime.bigint();
    const { body, error, code } = await this.handle(msg.data);
    if (body === null) {
      return; // not addressed to this worker
    }
    st.num_requests++;
    st.processing_time += Number(process.hrtime.bigint() - t0);
    st.average_processing_time = Math.round(st.processing_time / st.num_requests);
    if (!msg.reply) {
      return;
    }
    if (error) {
      st.num_errors++;
      st.last_error = `${code}:${error}`;
      const h = this.makeHeaders();
      h.set("Nats-Service-Error", error);
      h.set("Nats-Service-Error-Code", String(code));
      msg.respond(body, { headers: h });
      return;
    }
    msg.respond(body);
  }

  stop() {
    for (const s of this.subs) {
      s.unsubscribe();
    }
    this.subs = [];
  }
}

module.exports = {
  SERVICE_PREFIX,
  ENDPOINT_CONTROL,
  ENDPOINT_CONTROL_STEP,
  serviceName,
  semVer,
  serviceConfig,
  MicroService,
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
