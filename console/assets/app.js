// The jetfleet console: plain JavaScript over /console/api (no framework,
// no build step). Every dynamic value goes through esc() before it is
// written as HTML.
"use strict";

const api = "/console/api/";
// ctl is the last control answer {step, text, error}: the step panel is
// drawn anew on every poll and shows it again.
const state = { status: null, selected: null, letter: null, tab: "pipeline", letters: [], ctl: null };

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
const $ = sel => document.querySelector(sel);
const fmt = n => (n < 0 || n === undefined || n === null) ? "–" : Number(n).toLocaleString("en-US");

function ago(t) {
  if (!t) return "–";
  const s = Math.max(0, (Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return Math.round(s) + "s ago";
  if (s < 3600) return Math.round(s / 60) + "m ago";
  if (s < 86400) return Math.round(s / 3600) + "h ago";
  return Math.round(s / 86400) + "d ago";
}
function dur(sec) {
  if (sec === undefined) return "–";
  if (sec < 60) return Math.round(sec) + "s";
  if (sec < 3600) return Math.round(sec / 60) + "m";
  return (sec / 3600).toFixed(1) + "h";
}

async function get(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
async function post(path, data) {
  const r = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// ---- tabs ----
function showTab() {
  const tab = (location.hash || "#pipeline").slice(1).split("/")[0];
  state.tab = ["pipeline", "dead-letters", "marts", "alerts"].includes(tab) ? tab : "pipeline";
  document.querySelectorAll(".tab").forEach(s => { s.hidden = s.id !== "tab-" + state.tab; });
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.tab === state.tab));
  if (state.tab === "dead-letters") loadLetters();
  if (state.tab === "alerts") loadAlerts();
  if (state.tab === "marts") renderMarts();
}
window.addEventListener("hashchange", showTab);

// ---- status and the graph ----
const order = ["ingest", "validate", "transform", "rekey", "aggregate"];

function stepClass(s) {
  if (["failed", "stale", "no_workers", "no_consumer"].includes(s.state) || s.redelivered > 0) return "trouble";
  if (s.paused || s.state === "paused") return "paused";
  if (s.state === "idle") return "idle";
  return "ok";
}

function nodeHTML(s) {
  const alive = s.workers.filter(w => w.liveness === "alive").length;
  const sel = state.selected === s.step + "/" + s.dataset ? " selected" : "";
  return `<div class="node ${stepClass(s)}${sel}" data-step="${esc(s.step)}" data-dataset="${esc(s.dataset)}" data-processed="${s.processed}" data-state="${esc(s.state)}">
    <span class="state">${esc(s.state)}</span><div class="name">${esc(s.step)}</div>
    <dl><dt>records/min</dt><dd>${fmt(s.records_per_minute)}</dd>
    <dt>processed</dt><dd class="processed">${fmt(s.processed)}</dd>
    <dt>lag</dt><dd>${fmt(s.pending)}</dd>
    <dt>in flight</dt><dd>${fmt(s.ack_pending)}</dd>
    <dt>dead letters</dt><dd class="${s.dlq ? "dlq" : ""}">${fmt(s.dlq)}</dd>
    <dt>workers</dt><dd>${alive}/${s.workers.length}</dd></dl></div>`;
}

function renderGraph(st) {
  const datasets = [];
  for (const s of st.steps) if (!datasets.includes(s.dataset)) datasets.push(s.dataset);
  for (const b of st.balance) if (!datasets.includes(b.dataset)) datasets.push(b.dataset);
  let html = "";
  for (const ds of datasets) {
    const steps = st.steps.filter(s => s.dataset === ds);
    const main = steps.filter(s => s.step !== "alert" && order.includes(s.step));
    main.sort((a, b) => order.indexOf(a.step) - order.indexOf(b.step));
    const side = steps.filter(s => !main.includes(s));
    const bal = st.balance.find(b => b.dataset === ds);
    const marts = st.marts.filter(m => m.dataset === ds);
    const parts = [`<div class="node source" data-node="published"><div class="name">published</div>
      <dl><dt>records</dt><dd>${fmt(bal ? bal.published : undefined)}</dd></dl></div>`];
    for (const s of main) parts.push(nodeHTML(s));
    parts.push(`<div class="node sink" data-node="marts"><div class="name">marts</div><dl>${marts.map(m =>
      `<dt>${esc(m.name)}</dt><dd>${fmt(m.rows)} rows</dd>`).join("") || "<dt>none yet</dt><dd></dd>"}</dl></div>`);
    html += `<div class="dataset" data-dataset="${esc(ds)}"><h3>${esc(ds)}</h3>
      <div class="flow">${parts.join('<span class="arrow">→</span>')}</div>
      ${side.length ? `<div class="branch"><span class="muted">beside the flow:</span>${side.map(nodeHTML).join("")}</div>` : ""}</div>`;
  }
  $("#graph").innerHTML = html || '<p class="muted">No steps yet: no worker has started.</p>';
  document.querySelectorAll("#graph .node[data-step]").forEach(n => n.addEventListener("click", () => {
    const key = n.dataset.step + "/" + n.dataset.dataset;
    state.selected = state.selected === key ? null : key;
    renderGraph(state.status.status);
    renderStep();
  }));
}

function renderStep() {
  const box = $("#step-detail");
  const st = state.status && state.status.status;
  const s = st && state.selected && st.steps.find(x => x.step + "/" + x.dataset === state.selected);
  if (!s) { box.hidden = true; return; }
  box.hidden = false;
  const rows = s.workers.map(w => `<tr><td>${esc(w.id)}</td><td>${esc(w.liveness)}</td><td>${esc(w.state)}</td><td>${esc(w.host)}</td>
    <td class="num">${dur(w.uptime_s)}</td><td class="num">${dur(w.beat_age_s)} ago</td><td class="num">${fmt(w.in_flight)}</td>
    <td class="num">${fmt(w.counters && w.counters.acked)}</td><td>${esc(w.last_error || "")}</td></tr>`).join("");
  box.innerHTML = `<h3>${esc(s.step)} / ${esc(s.dataset)} <small class="muted">consumer ${esc(s.consumer)} on ${esc(s.stream)}, max deliver ${s.max_deliver}</small></h3>
    ${s.failed ? `<div class="error">${esc(s.failed)}</div>` : ""}
    <table class="grid"><thead><tr><th>worker</th><th>liveness</th><th>state</th><th>host</th><th>uptime</th><th>last beat</th><th>in flight</th><th>acked</th><th>last error</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="9" class="muted">no workers</td></tr>'}</tbody></table>
    <div class="row"><button data-op="pause">Pause</button><button data-op="resume">Resume</button><button data-op="drain">Drain</button>
    <span class="muted">${state.status.write ? "acts on every worker of the step" : "read-only: the server was started without --console-write"}</span></div>
    <div id="ctl-message" class="message" hidden></div>`;
  const ctl = state.ctl;
  if (ctl && ctl.step === state.selected) showMessage("#ctl-message", ctl.text, ctl.error);
  box.querySelectorAll("button[data-op]").forEach(b => b.addEventListener("click", async () => {
    try {
      const res = await post(api + "control", { op: b.dataset.op, target: s.step, dataset: s.dataset });
      state.ctl = { step: state.selected, error: false, text: res.replies.map(r => `${r.worker}: ${r.state}${r.error ? " (" + r.error + ")" : ""}`).join("\n") };
    } catch (e) {
      state.ctl = { step: state.selected, error: true, text: b.dataset.op + " refused: " + e.message };
    }
    renderStep();
  }));
}

function renderBalance(st) {
  const rows = st.balance.map(b => `<tr data-dataset="${esc(b.dataset)}"><td>${esc(b.dataset)}</td><td>${esc(b.state)}</td>
    <td class="num">${fmt(b.published)}</td><td class="num">${fmt(b.clean)}</td><td class="num">${fmt(b.dead_lettered)}</td>
    <td class="num">${fmt(b.duplicates)}</td><td class="num">${fmt(b.in_flight)}</td><td class="num">${fmt(b.unaccounted)}</td><td>${esc(b.note || "")}</td></tr>`).join("");
  $("#balance").innerHTML = `<thead><tr><th>dataset</th><th>state</th><th>published</th><th>clean</th><th>dead-lettered</th><th>duplicates</th><th>in flight</th><th>unaccounted</th><th>note</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="9" class="muted">nothing published yet</td></tr>'}</tbody>`;
}

async function refreshStatus() {
  try {
    const doc = await get(api + "status");
    state.status = doc;
    const st = doc.status;
    $("#pipeline-name").textContent = doc.pipeline ? "· " + doc.pipeline : "";
    $("#headline").textContent = st.headline;
    $("#headline").classList.toggle("bad", !st.healthy);
    $("#write-mode").textContent = doc.write ? "write actions on" : "read-only";
    $("#dlq-count").textContent = st.dead_letters ? String(st.dead_letters) : "";
    $("#problems").innerHTML = st.problems.map(p => `<li>${esc(p)}</li>`).join("") + st.notes.map(p => `<li class="note">${esc(p)}</li>`).join("");
    renderGraph(st);
    renderStep();
    renderBalance(st);
    fillFilterOptions(st);
    if (state.tab === "marts") renderMarts();
    if (state.tab === "alerts") renderRules();
  } catch (e) {
    $("#headline").textContent = "cannot read the fleet: " + e.message;
    $("#headline").classList.add("bad");
  }
}

// ---- charts (inline SVG) ----
const W = 320, H = 90, PAD = 4;

function sparkline(values, color) {
  const pts = values.map((v, i) => [i, v]).filter(p => p[1] >= 0);
  if (pts.length < 2) return `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" font-size="11" fill="#6b7385">collecting…</text>`;
  const maxY = Math.max(1, ...pts.map(p => p[1]));
  const n = Math.max(values.length - 1, 1);
  const xy = pts.map(([i, v]) => `${(PAD + i * (W - 2 * PAD) / n).toFixed(1)},${(H - PAD - v * (H - 2 * PAD) / maxY).toFixed(1)}`);
  return `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${xy.join(" ")}"/>`;
}

async function refreshHistory() {
  try {
    const h = await get(api + "history");
    const span = h.times.length > 1 ? Math.round((new Date(h.times[h.times.length - 1]) - new Date(h.times[0])) / 60000) : 0;
    const rank = s => s.step === "alert" ? order.length : (order.includes(s.step) ? order.indexOf(s.step) : order.length + 1);
    h.steps.sort((a, b) => a.dataset.localeCompare(b.dataset) || rank(a) - rank(b));
    $("#charts").innerHTML = h.steps.map(s => {
      const last = a => a.length ? a[a.length - 1] : -1;
      const maxR = Math.max(0, ...s.records_per_min), maxP = Math.max(0, ...s.pending);
      return `<div class="chart" data-chart="${esc(s.step)}/${esc(s.dataset)}" data-max-rate="${maxR}"><div class="title">${esc(s.step)} / ${esc(s.dataset)}</div>
        <svg viewBox="0 0 ${W} ${H}" height="${H}" role="img" aria-label="records per minute and lag of ${esc(s.step)}">
        <line x1="0" y1="${H - PAD}" x2="${W}" y2="${H - PAD}" stroke="#d9dde5"/>
        ${sparkline(s.records_per_min, "#2f5fd0")}${sparkline(s.pending, "#cf222e")}</svg>
        <div class="legend"><span style="color:#2f5fd0">■</span> records/min ${fmt(last(s.records_per_min))} (max ${fmt(maxR)})
        · <span style="color:#cf222e">■</span> lag ${fmt(last(s.pending))} (max ${fmt(maxP)}) · over ${span < 1 ? "<1" : span} min</div></div>`;
    }).join("") || '<p class="muted">No samples yet.</p>';
  } catch (e) { /* the headline already says the fleet cannot be read */ }
}

// ---- dead letters ----
function fillFilterOptions(st) {
  const form = $("#dl-filter");
  for (const [name, values] of [["step", [...new Set(st.steps.map(s => s.step))]], ["dataset", [...new Set(st.steps.map(s => s.dataset))]]]) {
    const sel = form.elements[name];
    const have = [...sel.options].map(o => o.value);
    for (const v of values) if (!have.includes(v)) sel.add(new Option(v, v));
  }
}

function letterFilter() {
  const f = $("#dl-filter").elements;
  return { step: f.step.value, dataset: f.dataset.value, reason: f.reason.value.trim() };
}

async function loadLetters() {
  const f = letterFilter();
  const q = new URLSearchParams(f);
  try {
    const doc = await get(api + "deadletters?" + q);
    state.letters = doc.letters;
    $("#dl-summary").textContent = doc.matched > doc.letters.length ? `${doc.matched} match, newest ${doc.letters.length} shown` : `${doc.matched} match`;
    $("#dl-list").innerHTML = `<thead><tr><th>seq</th><th>when</th><th>step</th><th>dataset</th><th>tries</th><th>reason</th><th></th></tr></thead><tbody>` +
      doc.letters.map(d => `<tr data-seq="${d.seq}" class="${state.letter === d.seq ? "selected" : ""}"><td class="num">${d.seq}</td><td>${ago(d.time)}</td><td>${esc(d.step)}</td>
        <td>${esc(d.dataset)}</td><td class="num">${d.deliveries}</td><td>${esc(d.reason)}</td>
        <td>${d.truncated ? '<span class="tag truncated">truncated</span> ' : ""}${d.replayed ? '<span class="tag replayed">replayed</span>' : ""}</td></tr>`).join("") +
      (doc.letters.length ? "" : '<tr><td colspan="7" class="muted">no dead letters match</td></tr>') + "</tbody>";
    document.querySelectorAll("#dl-list tbody tr[data-seq]").forEach(tr => tr.addEventListener("click", () => openLetter(Number(tr.dataset.seq))));
  } catch (e) {
    showMessage("#dl-message", "dead letters: " + e.message, true);
  }
}

async function openLetter(seq) {
  state.letter = seq;
  document.querySelectorAll("#dl-list tr").forEach(tr => tr.classList.toggle("selected", Number(tr.dataset.seq) === seq));
  const box = $("#dl-detail");
  try {
    const d = await get(api + "deadletters/" + seq);
    const headers = Object.keys(d.header || {}).sort().map(k => `<dt>${esc(k)}</dt><dd>${esc(d.header[k].join(", "))}</dd>`).join("");
    box.innerHTML = `<h3>dead letter ${d.seq} <small class="muted">${esc(d.subject)}</small></h3>
      <dl class="kv"><dt>reason</dt><dd class="reason">${esc(d.reason)}</dd><dt>from</dt><dd>${esc(d.orig_stream)} #${d.orig_seq} (${esc(d.orig_subject)})</dd>
      <dt>deliveries</dt><dd>${d.deliveries} by ${esc(d.worker || "?")}</dd><dt>stored</dt><dd>${esc(new Date(d.time).toISOString())}</dd>
      ${d.replayed ? `<dt>replayed</dt><dd>${esc(new Date(d.replayed).toISOString())}</dd>` : ""}</dl>
      <h3>body ${d.truncated ? `<span class="tag truncated">truncated${d.full_size ? ": " + fmt(d.full_size) + " bytes in full" : ""}</span>` : ""}</h3>
      <pre class="body">${esc(d.body)}</pre>
      <h3>headers</h3><dl class="kv headers">${headers}</dl>
      <div class="row"><button id="dl-replay-one">Replay…</button></div>`;
    box.hidden = false;
    $("#dl-replay-one").addEventListener("click", () => previewReplay({ seqs: [d.seq] }, `dead letter ${d.seq}`));
  } catch (e) {
    box.hidden = false;
    box.innerHTML = `<div class="error">${esc(e.message)}</div>`;
  }
}

function showMessage(sel, text, isError) {
  const m = $(sel);
  m.className = isError ? "message error" : "message";
  m.textContent = text;
  m.hidden = false;
}

// previewReplay asks the server what a replay would do (a dry run
// publishes nothing), then replays on confirmation.
async function previewReplay(req, what) {
  const box = $("#dl-preview");
  $("#dl-message").hidden = true;
  try {
    const dry = await post(api + "replay", { ...req, dry_run: true });
    const would = dry.counts.would_publish || 0, skipped = dry.counts.skipped || 0;
    const targets = [...new Set(dry.results.filter(r => r.outcome === "would_publish").map(r => r.subject))];
    box.innerHTML = `<div>Replay ${esc(what)}: <b>${would}</b> dead letter(s) would go back to ${esc(targets.join(", ") || "–")}` +
      `${skipped ? `; ${skipped} skipped (replayed before)` : ""}. A record that fails again is dead-lettered again.</div>
      <div class="row"><button class="primary" id="dl-confirm" ${would ? "" : "disabled"}>Confirm replay</button><button id="dl-cancel">Cancel</button></div>`;
    box.hidden = false;
    $("#dl-cancel").addEventListener("click", () => { box.hidden = true; });
    $("#dl-confirm").addEventListener("click", async () => {
      box.hidden = true;
      try {
        const res = await post(api + "replay", req);
        showMessage("#dl-message", `replayed ${res.counts.published || 0}, already there ${res.counts.duplicate || 0}, skipped ${res.counts.skipped || 0}: ` +
          res.results.map(r => `${r.seq} → ${r.subject} ${r.outcome}`).join("; "), false);
        loadLetters();
        if (state.letter) openLetter(state.letter);
      } catch (e) {
        showMessage("#dl-message", "replay refused: " + e.message, true);
      }
    });
  } catch (e) {
    showMessage("#dl-message", "replay refused: " + e.message, true);
  }
}

$("#dl-filter").addEventListener("submit", ev => { ev.preventDefault(); loadLetters(); });
$("#dl-replay-all").addEventListener("click", () => {
  const f = letterFilter();
  previewReplay({ ...f, all: true }, "every dead letter matching the filter");
});

// ---- marts and the query box ----
function renderMarts() {
  const st = state.status && state.status.status;
  if (!st) return;
  $("#marts-table").innerHTML = `<thead><tr><th>mart</th><th>dataset</th><th>rows</th><th>partitions</th><th>updated</th><th>unflushed</th><th>error</th></tr></thead><tbody>` +
    st.marts.map(m => `<tr data-mart="${esc(m.name)}"><td>${esc(m.name)}</td><td>${esc(m.dataset)}</td><td class="num">${fmt(m.rows)}</td><td class="num">${fmt(m.partitions)}</td>
      <td>${ago(m.updated_at)}</td><td class="num">${fmt(m.unflushed)}</td><td>${esc(m.error || "")}</td></tr>`).join("") +
    (st.marts.length ? "" : '<tr><td colspan="7" class="muted">no marts yet</td></tr>') + "</tbody>";
  const ta = $("#query-text");
  if (!ta.value && st.marts.length) {
    const m = st.marts.find(x => x.name === "daily_sales") || st.marts[0];
    ta.value = m.name === "daily_sales" ? "SELECT day, sum(orders) AS orders, sum(revenue_usd) AS revenue_usd\nFROM daily_sales GROUP BY day ORDER BY day" : `SELECT * FROM ${m.name} LIMIT 100`;
  }
  if (!state.status.query) {
    $("#query-info").textContent = "no marts on this server: start it with --data-dir";
  }
}

// cellText shows a number as the table reads best (the CSV keeps every digit).
const cellText = v => typeof v === "number" && !Number.isInteger(v) ? v.toLocaleString("en-US", { maximumFractionDigits: 4, useGrouping: false }) : String(v);

const timeType = t => /^(DATE|TIMESTAMP|TIME)/i.test(t);
const numType = t => /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|DECIMAL|REAL)/i.test(t);

// chart draws a line chart over a time column, else a bar chart of the
// first numeric column by the first text column; null when neither fits.
function chart(doc) {
  const cols = doc.columns, rows = doc.rows;
  if (!rows.length) return null;
  const ys = cols.map((c, i) => i).filter(i => numType(cols[i].type)).slice(0, 4);
  const tx = cols.findIndex(c => timeType(c.type));
  const colors = ["#2f5fd0", "#cf222e", "#1f883d", "#b7791f"];
  const CW = 860, CH = 260, L = 60, R = 10, T = 10, B = 40;
  if (tx >= 0 && ys.length) {
    const pts = rows.map(r => [new Date(String(r[tx]).replace(" ", "T")).getTime(), r]).filter(p => !isNaN(p[0])).sort((a, b) => a[0] - b[0]);
    if (pts.length < 1) return null;
    const x0 = pts[0][0], x1 = pts[pts.length - 1][0] || x0 + 1;
    const X = t => L + (x1 === x0 ? (CW - L - R) / 2 : (t - x0) * (CW - L - R) / (x1 - x0));
    let svg = "";
    const series = ys.filter(i => i !== tx);
    for (const [k, i] of series.entries()) {
      const vals = pts.map(p => p[1][i]).filter(v => typeof v === "number");
      const maxY = Math.max(1e-9, ...vals), minY = Math.min(0, ...vals);
      const Y = v => CH - B - (v - minY) * (CH - T - B) / (maxY - minY);
      const line = pts.filter(p => typeof p[1][i] === "number").map(p => `${X(p[0]).toFixed(1)},${Y(p[1][i]).toFixed(1)}`).join(" ");
      svg += `<polyline class="series" fill="none" stroke="${colors[k]}" stroke-width="2" points="${line}"/>`;
      svg += pts.filter(p => typeof p[1][i] === "number").map(p => `<circle cx="${X(p[0]).toFixed(1)}" cy="${Y(p[1][i]).toFixed(1)}" r="2.5" fill="${colors[k]}"/>`).join("");
      if (k === 0) svg += `<text x="${L - 6}" y="${T + 8}" text-anchor="end" font-size="11">${esc(fmt(Math.round(maxY * 100) / 100))}</text><text x="${L - 6}" y="${CH - B}" text-anchor="end" font-size="11">${esc(fmt(minY))}</text>`;
    }
    svg += `<text x="${L}" y="${CH - 20}" font-size="11">${esc(String(pts[0][1][tx]))}</text><text x="${CW - R}" y="${CH - 20}" text-anchor="end" font-size="11">${esc(String(pts[pts.length - 1][1][tx]))}</text>`;
    const legend = series.map((i, k) => `<tspan fill="${colors[k]}">■ ${esc(cols[i].name)}</tspan>`).join("  ");
    return `<svg class="line-chart" viewBox="0 0 ${CW} ${CH}" role="img" aria-label="line chart"><line x1="${L}" y1="${CH - B}" x2="${CW - R}" y2="${CH - B}" stroke="#999"/>
      <line x1="${L}" y1="${T}" x2="${L}" y2="${CH - B}" stroke="#999"/>${svg}<text x="${L}" y="${CH - 4}" font-size="12">${legend}  <tspan fill="#6b7385">by ${esc(cols[tx].name)}${series.length > 1 ? " (each series on its own scale)" : ""}</tspan></text></svg>`;
  }
  const lx = cols.findIndex(c => !numType(c.type));
  if (lx >= 0 && ys.length) {
    const i = ys[0], shown = rows.slice(0, 30);
    const maxY = Math.max(1e-9, ...shown.map(r => typeof r[i] === "number" ? r[i] : 0));
    const bw = (CW - L - R) / shown.length;
    const bars = shown.map((r, k) => {
      const v = typeof r[i] === "number" ? r[i] : 0, h = Math.max(0, v) * (CH - T - B) / maxY;
      return `<rect class="bar" x="${(L + k * bw + 2).toFixed(1)}" y="${(CH - B - h).toFixed(1)}" width="${Math.max(1, bw - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="#2f5fd0"><title>${esc(r[lx])}: ${esc(v)}</title></rect>
        <text x="${(L + k * bw + bw / 2).toFixed(1)}" y="${CH - B + 14}" text-anchor="middle" font-size="10">${esc(String(r[lx] ?? "").slice(0, 10))}</text>`;
    }).join("");
    return `<svg class="bar-chart" viewBox="0 0 ${CW} ${CH}" role="img" aria-label="bar chart"><line x1="${L}" y1="${CH - B}" x2="${CW - R}" y2="${CH - B}" stroke="#999"/>${bars}
      <text x="${L - 6}" y="${T + 8}" text-anchor="end" font-size="11">${esc(fmt(Math.round(maxY * 100) / 100))}</text>
      <text x="${L}" y="${CH - 4}" font-size="12" fill="#2f5fd0">■ ${esc(cols[i].name)} <tspan fill="#6b7385">by ${esc(cols[lx].name)}</tspan></text></svg>`;
  }
  return null;
}

async function runQuery(ev) {
  ev.preventDefault();
  const q = $("#query-text").value;
  const err = $("#query-error"), box = $("#query-chart"), table = $("#query-result");
  $("#query-csv").href = api + "query?" + new URLSearchParams({ q, format: "csv" });
  $("#query-info").textContent = "running…";
  try {
    const doc = await get(api + "query?" + new URLSearchParams({ q }));
    err.hidden = true;
    table.innerHTML = `<thead><tr>${doc.columns.map(c => `<th title="${esc(c.type)}">${esc(c.name)}</th>`).join("")}</tr></thead><tbody>` +
      doc.rows.map(r => `<tr>${r.map((v, i) => `<td class="${numType(doc.columns[i].type) ? "num" : ""}">${v === null ? '<span class="muted">NULL</span>' : esc(cellText(v))}</td>`).join("")}</tr>`).join("") + "</tbody>";
    $("#query-info").textContent = `${doc.total} row(s)${doc.truncated ? ", first " + doc.rows.length + " shown (the CSV has them all)" : ""}`;
    const svg = chart(doc);
    box.hidden = !svg;
    box.innerHTML = svg || "";
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
    box.hidden = true;
    table.innerHTML = "";
    $("#query-info").textContent = "";
  }
}
$("#query-form").addEventListener("submit", runQuery);

// ---- alerts ----
function renderRules() {
  const rules = (state.status && state.status.rules) || [];
  $("#rules").innerHTML = `<thead><tr><th>rule</th><th>kind</th><th>on</th><th>severity</th><th>cooldown</th><th>when</th></tr></thead><tbody>` +
    rules.map(r => `<tr><td>${esc(r.name)}</td><td>${esc(r.kind)}</td><td>${esc(r.mart || r.dataset)}</td><td class="sev-${esc(r.severity)}">${esc(r.severity)}</td>
      <td>${esc(r.cooldown)}</td><td><code>${esc(r.when || "")}</code></td></tr>`).join("") +
    (rules.length ? "" : '<tr><td colspan="6" class="muted">the pipeline has no alert rules (or this server does not know the pipeline)</td></tr>') + "</tbody>";
}

async function loadAlerts() {
  renderRules();
  try {
    const alerts = await get(api + "alerts");
    $("#alerts-table").innerHTML = `<thead><tr><th>fired</th><th>rule</th><th>severity</th><th>key</th><th>suppressed</th><th>message</th></tr></thead><tbody>` +
      alerts.map(a => `<tr><td title="${esc(a.fired_at || a.stored)}">${ago(a.fired_at || a.stored)}</td><td>${esc(a.rule)}</td><td class="sev-${esc(a.severity)}">${esc(a.severity)}</td>
        <td>${esc(a.key || "–")}</td><td class="num">${fmt(a.suppressed)}</td><td>${esc(a.message)}</td></tr>`).join("") +
      (alerts.length ? "" : '<tr><td colspan="6" class="muted">no alerts have fired</td></tr>') + "</tbody>";
  } catch (e) {
    $("#alerts-table").innerHTML = `<tr><td class="error">${esc(e.message)}</td></tr>`;
  }
}

// ---- start ----
showTab();
refreshStatus();
refreshHistory();
setInterval(refreshStatus, 2000);
setInterval(refreshHistory, 5000);
setInterval(() => { if (state.tab === "alerts") loadAlerts(); }, 10000);
