// The transform step of the feedback dataset, written in JavaScript with
// the official npm nats client. It is a jetfleet worker in everything but
// language, following the wire contract (docs/wire.md):
//
//   - consumes the shared durable transform_feedback on jf.valid.feedback
//     (created or updated with the contract's settings; replicas share it)
//   - publishes each scored record to jf.clean.feedback with a Nats-Msg-Id
//     derived from the input's, so a redelivered input is stored once
//   - acks an input only after JetStream acknowledged everything made from it
//   - dead-letters a record it can never score to jf.dlq.transform.feedback
//     with the contract's headers and a reason, then terminates its message
//   - handles bulk messages (Jf-Records: NDJSON, one output bulk message)
//   - beats on jf.hb.transform.<worker> so `jetfleet status` lists it, and
//     answers ping, pause, resume and drain on jf.ctl.step.transform.<worker>
//   - registers as NATS micro service jetfleet-transform (`nats micro ls`)
//     with the endpoints and metadata of the Go workers
//   - drains on SIGTERM or SIGINT: finishes what it fetched, acks, exits 0
//
// Environment: NATS_URL (nats://127.0.0.1:4222), JF_DATASET (feedback),
// JF_HEARTBEAT_MS (5000), JF_WORKER_ID (host-js-<random>), JF_ACK_WAIT_MS
// (30000), JF_MAX_DELIVER (5), JF_LOG_LEVEL (info; debug logs every dead letter).
"use strict";

const { connect, headers: natsHeaders } = require("nats");
const os = require("node:os");
const contract = require("./contract.js");
const { score, PermanentError } = require("./score.js");
const pkg = require("./package.json");

const { subjects, headers: H } = contract;

const STEP = "transform";
const FETCH_BATCH = 64;
const FETCH_EXPIRES_MS = 1000;
const DRAIN_TIMEOUT_MS = 4000;

const cfg = {
  servers: process.env.NATS_URL || "nats://127.0.0.1:4222",
  dataset: process.env.JF_DATASET || "feedback",
  heartbeatMs: parseInt(process.env.JF_HEARTBEAT_MS || "5000", 10),
  worker: process.env.JF_WORKER_ID || contract.newWorkerId("js"),
  ackWaitMs: parseInt(process.env.JF_ACK_WAIT_MS || "30000", 10),
  maxDeliver: parseInt(process.env.JF_MAX_DELIVER || "5", 10),
  // On a server where only the admin creates consumers (jetfleet setup),
  // bind to the durable instead of creating it (docs/security.md).
  bindOnly: ["1", "true", "yes"].includes((process.env.JETFLEET_BIND_ONLY || "").toLowerCase()),
};

// One JSON object per line, like the Go workers' logs, with the worker,
// step and dataset on every line.
const LEVELS = { debug: 0, info: 1, warn: 2, error: 3 };
const minLevel = LEVELS[process.env.JF_LOG_LEVEL || "info"] ?? LEVELS.info;

function log(level, msg, fields = {}) {
  if (LEVELS[level] < minLevel) {
    return;
  }
  const line = { level, time: new Date().toISOString(), worker: cfg.worker, step: STEP, dataset: cfg.dataset, ...fields, message: msg };
  process.stdout.write(JSON.stringify(line) + "\n");
}

// transform turns one validated feedback record into its clean form:
// the record with channel normalised, ts in UTC, and the sentiment scores.
function transform(data) {
  let rec;
  try {
    rec = JSON.parse(data.toString("utf8"));
  } catch (err) {
    throw new PermanentError(`not JSON: ${err.message}`);
  }
  if (rec === null || typeof rec !== "object" || Array.isArray(rec)) {
    throw new PermanentError("not a JSON object");
  }
  const s = score(rec.text);
  const ts = new Date(rec.ts);
  if (Number.isNaN(ts.getTime())) {
    throw new PermanentError(`ts ${JSON.stringify(rec.ts)} is not a timestamp`);
  }
  return JSON.stringify({
    ...rec,
    channel: typeof rec.channel === "string" ? rec.channel.trim().toLowerCase() : rec.channel,
    ts: ts.toISOString(),
    score: s.score,
    sentiment: s.sentiment,
    words: s.words,
  });
}

class Step {
  constructor(nc, js, jsm) {
    this.nc = nc;
    this.js = js;
    this.jsm = jsm;
    this.hb = new contract.Heartbeat({
      worker: cfg.worker,
      step: STEP,
      dataset: cfg.dataset,
      version: `feedback-sentiment ${pkg.version}`,
      intervalMs: cfg.heartbeatMs,
      extra: { language: "javascript", runtime: `node ${process.version}`, client: "nats.js" },
    });
    this.stream = contract.steps[STEP].stream;
    this.output = contract.steps[STEP].output(cfg.dataset);
    this.dlq = subjects.deadLetter(STEP, cfg.dataset);
    this.stopping = false;
    this.paused = false;
    this.wake = null; // resolves a parked loop
    this.maxDeliver = cfg.maxDeliver;
  }

  beat() {
    this.nc.publish(subjects.heartbeat(STEP, cfg.worker), JSON.stringify(this.hb.body()));
  }

  nudge() {
    if (this.wake) {
      this.wake();
      this.wake = null;
    }
  }

  // bind creates or updates the durable consumer with the contract's
  // settings, waiting (with backoff) until jetfleet has made the streams;
  // bind-only, it waits until jetfleet setup has made the consumer.
  async bind() {
    const ccfg = contract.consumerConfig(STEP, cfg.dataset, { ackWaitMs: cfg.ackWaitMs, maxDeliver: cfg.maxDeliver });
    for (let attempt = 1; !this.stopping; attempt++) {
      try {
        const info = cfg.bindOnly
          ? await this.bindOnly(ccfg)
          : await this.jsm.consumers.add(this.stream, ccfg, "" /* create or update */);
        this.maxDeliver = info.config.max_deliver;
        return await this.js.consumers.get(this.stream, ccfg.durable_name);
      } catch (err) {
        this.hb.lastError = err.message;
        const delay = Math.min(200 * 2 ** (attempt - 1), 10000);
        log("warn", "waiting for JetStream", { error: err.message, attempt, retry_in_ms: delay, stream: this.stream });
        await sleep(delay);
      }
    }
    return null;
  }

  // bindOnly reads the durable's info, and refuses one that breaks the
  // contract (another filter or ack policy) rather than consume from it.
  async bindOnly(ccfg) {
    const info = await this.jsm.consumers.info(this.stream, ccfg.durable_name);
    if (info.config.filter_subject !== ccfg.filter_subject || info.config.ack_policy !== ccfg.ack_policy) {
      throw new Error(
        `consumer ${ccfg.durable_name} on ${this.stream} breaks the contract: filter ${info.config.filter_subject}, ` +
          `ack ${info.config.ack_policy}; want ${ccfg.filter_subject}, ${ccfg.ack_policy} (jetfleet setup makes it right)`,
      );
    }
    return info;
  }

  async run() {
    const consumer = await this.bind();
    if (!consumer) {
      return;
    }
    this.hb.state = "running";
    log("info", "worker started", { consumer: contract.consumerName(STEP, cfg.dataset), output: this.output });
    this.beat();
    while (!this.stopping) {
      if (this.paused) {
        this.hb.state = "paused";
        await new Promise((resolve) => (this.wake = resolve));
        if (!this.paused && !this.stopping) {
          this.hb.state = "running";
        }
        continue;
      }
      let batch;
      try {
        batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
        // Every fetched message is handled, also after a stop request:
        // that is the drain. The fetch ends at its expiry at the latest.
        // Messages of a batch are handled concurrently (each waits for its
        // own pub-acks, then acks): at most FETCH_BATCH in flight.
        const handling = [];
        for await (const m of batch) {
          handling.push(this.handle(m));
        }
        await Promise.all(handling);
      } catch (err) {
        this.hb.lastError = err.message;
        log("warn", "fetch", { error: err.message });
        await sleep(500);
      }
    }
  }

  // handle settles one message: every record scored, outputs and dead
  // letters published, and only once JetStream has acked all of them is
  // the input acked (or terminated, when its only record is dead).
  async handle(m) {
    const c = this.hb.counters;
    c.messages++;
    const deliveries = m.info.deliveryCount;
    if (deliveries > 1) {
      c.redelivered++;
    }
    this.hb.inFlight++;
    const inId = (m.headers && m.headers.get(H.msgId)) || contract.sequenceMsgId(m.info.stream, m.seq);
    const inTrace = (m.headers && m.headers.get(H.traceParent)) || "";
    const { records, bulk } = contract.splitBulk(m.headers, Buffer.from(m.data));
    const dead = [];
    try {
      const outputs = [];
      records.forEach((data, index) => {
        try {
          outputs.push(transform(data));
        } catch (err) {
          if (!(err instanceof PermanentError)) {
            throw err;
          }
          dead.push({ index, data, reason: err.message });
        }
      });
      const trace = contract.childTraceParent(inTrace, inId);
      const acks = [];
      if (!bulk) {
        outputs.forEach((o, i) => {
          const h = natsHeaders();
          h.set(H.traceParent, trace);
          acks.push(this.js.publish(this.output, o, { msgID: contract.deriveMsgId(inId, STEP, i), headers: h }));
        });
      } else if (outputs.length > 0) {
        const h = natsHeaders();
        h.set(H.records, String(outputs.length));
        h.set(H.traceParent, trace);
        acks.push(this.js.publish(this.output, contract.joinBulk(outputs), { msgID: contract.deriveMsgId(inId, STEP, 0), headers: h }));
      }
      for (const d of dead) {
        log("debug", "dead-lettered", { seq: m.seq, record: d.index, reason: d.reason });
        acks.push(this.publishDeadLetter(m, inId, inTrace, d, bulk));
      }
      await Promise.all(acks);
      c.records += records.length - dead.length;
      c.outputs += outputs.length;
      c.dead_lettered += dead.length;
      if (!bulk && dead.length > 0) {
        m.term(contract.cleanReason(contract.TERM_REASON_DEAD_LETTERED + dead[0].reason));
      } else {
        m.ack();
      }
      c.acked++;
    } catch (err) {
      try {
        await this.retry(m, inId, inTrace, records, bulk, deliveries, err, dead);
      } catch (nakErr) {
        // The connection is gone: the message comes back after the ack wait.
        log("error", "could not settle a message", { seq: m.seq, error: nakErr.message });
      }
    } finally {
      this.hb.inFlight--;
    }
  }

  // retry settles a message that failed for a transient reason (a publish
  // that was not acknowledged): Nak with backoff, or on its last allowed
  // delivery a whole-message dead letter and Term. Records of a bulk
  // message dead-lettered on their own (dead) are stored first and left
  // out of the whole one, so that no record is dead-lettered twice.
  async retry(m, inId, inTrace, records, bulk, deliveries, cause, dead) {
    this.hb.lastError = cause.message;
    const c = this.hb.counters;
    if (this.maxDeliver > 0 && deliveries >= this.maxDeliver) {
      let reason = `gave up after ${deliveries} deliveries: ${cause.message}`;
      try {
        let rest = records;
        if (bulk && dead.length > 0) {
          await Promise.all(dead.map((d) => this.publishDeadLetter(m, inId, inTrace, d, bulk)));
          const own = new Set(dead.map((d) => d.index));
          rest = records.filter((_, i) => !own.has(i));
          reason += ` (${dead.length} of its records dead-lettered on their own)`;
        }
        if (rest.length > 0) {
          const body = bulk ? Buffer.concat([contract.joinBulk(rest), Buffer.from("\n")]) : Buffer.from(m.data);
          await this.publishDeadLetter(m, inId, inTrace, { index: -1, data: body, reason, records: rest.length }, bulk);
        }
        c.dead_lettered += rest.length;
        m.term(contract.cleanReason(contract.TERM_REASON_DEAD_LETTERED + reason));
        c.acked++;
        log("warn", "dead-lettered after max deliveries", { seq: m.seq, reason });
        return;
      } catch (err) {
        log("error", "dead letter publish failed", { seq: m.seq, error: err.message });
      }
    }
    const delay = Math.min(500 * 2 ** Math.max(deliveries - 1, 0), 30000);
    c.retried++;
    log("warn", "retrying", { seq: m.seq, delivery: deliveries, retry_in_ms: delay, error: cause.message });
    m.nak(delay);
  }

  publishDeadLetter(m, inId, inTrace, d, bulk) {
    const h = natsHeaders();
    h.set(H.origSubject, m.subject);
    h.set(H.origStream, m.info.stream);
    h.set(H.origSeq, String(m.seq));
    h.set(H.origMsgId, inId);
    h.set(H.deliveries, String(m.info.deliveryCount));
    h.set(H.consumer, m.info.consumer);
    h.set(H.step, STEP);
    h.set(H.worker, cfg.worker);
    h.set(H.reason, contract.cleanReason(d.reason));
    h.set(H.failedAt, new Date().toISOString());
    if (bulk && d.index >= 0) {
      h.set(H.recordIndex, String(d.index));
    }
    if (bulk && d.index < 0) {
      h.set(H.records, String(d.records));
    }
    if (inTrace) {
      h.set(H.traceParent, inTrace);
    }
    // A message of one record dead-lettered whole is its record's dead
    // letter; a bulk message's has an id of its own.
    const id = contract.deadLetterMsgId(inId, STEP, bulk ? d.index : Math.max(d.index, 0));
    return this.js.publish(this.dlq, d.data, { msgID: id, headers: h });
  }

  // control answers a request on jf.ctl.step.transform.<worker> or jf.ctl.step.transform
  // with the JSON reply of the contract, or null if not addressed to us.
  async control(data) {
    let req;
    try {
      req = JSON.parse(Buffer.from(data).toString("utf8"));
    } catch {
      req = { op: Buffer.from(data).toString("utf8").trim() }; // a bare "pause" works too
    }
    if (req.dataset && req.dataset !== cfg.dataset) {
      return null;
    }
    const reply = { worker: cfg.worker, step: STEP, dataset: cfg.dataset, op: req.op };
    switch (req.op) {
      case "pause":
        this.paused = true;
        await waitUntil(() => this.hb.state !== "running", DRAIN_TIMEOUT_MS);
        break;
      case "resume":
        this.paused = false;
        this.nudge();
        await waitUntil(() => this.hb.state !== "paused", DRAIN_TIMEOUT_MS);
        break;
      case "drain":
        this.paused = true;
        if (!(await waitUntil(() => this.hb.state !== "running" && this.hb.inFlight === 0, DRAIN_TIMEOUT_MS))) {
          reply.error = `still ${this.hb.inFlight} in flight after ${DRAIN_TIMEOUT_MS}ms`;
        }
        break;
      case "ping":
        break;
      default:
        reply.error = `unknown control op ${JSON.stringify(req.op)} (pause, resume, drain, ping)`;
    }
    log("info", "control request", { op: req.op, error: reply.error || "" });
    this.beat();
    reply.state = this.hb.state;
    reply.in_flight = this.hb.inFlight;
    return reply;
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(cond, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) {
      return false;
    }
    await sleep(5);
  }
  return true;
}

async function main() {
  // Signals first: a step waiting for its server still stops on SIGTERM.
  let step = null;
  let signals = 0;
  const onSignal = (sig) => {
    if (!step) {
      log("info", "stopped before connecting", { signal: sig });
      process.exit(0);
    }
    if (++signals > 1) {
      log("warn", "second signal: stopping at once", { signal: sig });
      process.exit(1);
    }
    log("info", "draining", { signal: sig });
    step.stopping = true;
    step.hb.state = "draining";
    step.nudge();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  // Like the Go workers, the step may start before its server: it keeps
  // trying, and reconnects forever.
  const nc = await connect({
    servers: cfg.servers.split(","),
    name: `jetfleet ${STEP} ${cfg.dataset} (js)`,
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
  });
  step = new Step(nc, nc.jetstream(), await nc.jetstreamManager());

  // The step is a NATS micro service like the Go workers (docs/wire.md):
  // `nats micro ls` lists it as jetfleet-transform, its endpoints are
  // jf.ctl.step.transform.<worker> and jf.ctl.step.transform (no queue group: a step-wide
  // request reaches every worker), its stats carry the heartbeat.
  const svc = new contract.MicroService(
    nc,
    contract.serviceConfig({
      worker: cfg.worker,
      step: STEP,
      dataset: cfg.dataset,
      version: step.hb.base.version,
      serviceVersion: pkg.version,
      description: `jetfleet ${STEP} step of dataset ${cfg.dataset} (JavaScript)`,
      extra: { language: "javascript" },
    }),
    {
      handle: async (data) => {
        const reply = await step.control(data);
        if (!reply) {
          return { body: null };
        }
        // As the Go workers: a failed op is a service error, 504 for a
        // drain that timed out, 400 otherwise.
        return { body: JSON.stringify(reply), error: reply.error, code: reply.op === "drain" ? 504 : 400 };
      },
      statsData: () => step.hb.body(),
      makeHeaders: natsHeaders,
    },
  );
  svc.start();

  step.beat();
  const beats = setInterval(() => step.beat(), cfg.heartbeatMs);
  await step.run();
  clearInterval(beats);
  step.hb.state = "stopped";
  step.beat(); // goodbye: the supervisor marks the worker stopped at once
  // Draining flushes the acks and the goodbye; without a server it cannot,
  // so it gets a bounded time (unsettled messages are redelivered anyway).
  const drained = (async () => {
    svc.stop();
    await nc.drain();
  })();
  let timer;
  const timeout = new Promise((resolve) => (timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)));
  await Promise.race([drained.catch(() => {}), timeout]);
  clearTimeout(timer);
  if (!nc.isClosed()) {
    await nc.close();
  }
  log("info", "worker stopped", { acked: step.hb.counters.acked });
}

main().catch((err) => {
  log("error", "sentiment step failed", { error: err.message });
  process.exit(1);
});
