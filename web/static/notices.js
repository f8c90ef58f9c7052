"use strict";
// The notices page (web/notices_api.py): a supervisor's offer, office change or announcement,
// previewed (how many clients get it by which channel, who not and why, the real message per
// language) before Send is possible, and Send sends exactly what was previewed: any change to
// the form asks for a new preview. Below, the outbox's counts and latest messages. Nothing
// here decides anything: the server's contact policy does. Texts: i18n.js's t() and label().
const $ = (id) => document.getElementById(id);
const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content;

async function api(method, path, body) {
  const response = await fetch("/desk/api/notices" + path, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(errorText(data, response.statusText));
  return data;
}

function item(text) { const li = document.createElement("li"); li.textContent = text; return li; }
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.append(td); }

function request() {
  const kind = $("n-kind").value;
  const body = { kind, channel: $("n-channel").value || null };
  if ($("n-segment").value) body.segment = $("n-segment").value;
  else body.clients = $("n-clients").value.split(/[\s,;]+/).filter((x) => x);
  if (kind === "offer") body.product = $("n-product").value;
  else body.message = $("n-message").value;
  return body;
}

let previewed = null;  // the request the shown preview is of: Send sends only that one
function changed() {
  previewed = null;
  $("n-send").disabled = true;
  const offer = $("n-kind").value === "offer";
  $("n-product-label").hidden = !offer;
  $("n-message-label").hidden = offer;
  $("n-list-label").hidden = $("n-segment").value !== "";
}

function fail(error) {
  const shown = $("n-error") || $("n-empty");  // a read-only page has no form
  shown.textContent = error.message;
  shown.hidden = false;
}

function showPreview(p) {
  const figures = $("n-figures");
  figures.replaceChildren(item(t("notices.clients", { count: fmtNumber(p.clients) })));
  for (const [channel, count] of Object.entries(p.by_channel)) {
    figures.append(item(t("notices.by_channel", { channel: label("channel", channel), count: fmtNumber(count) })));
  }
  if (p.already) figures.append(item(t("notices.already", { count: fmtNumber(p.already) })));
  for (const [reason, count] of Object.entries(p.skipped)) {
    figures.append(item(t("notices.skipped", { reason: label("notice_skip", reason), count: fmtNumber(count) })));
  }
  const samples = $("n-samples");
  samples.replaceChildren();
  if (!Object.keys(p.by_channel).length) samples.append(item(t("notices.nobody")));
  for (const s of p.samples) {
    const box = document.createElement("article");
    box.className = "sample";
    box.dataset.language = s.language;
    const heading = document.createElement("h3");
    heading.textContent = t("notices.sample", { language: s.language, channel: label("channel", s.channel) });
    const subject = document.createElement("p");
    subject.className = "subject";
    subject.textContent = s.subject;
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = s.text;
    box.append(heading, subject, text);
    samples.append(box);
  }
  $("n-previewed").hidden = false;
}

async function preview() {
  $("n-error").hidden = true;
  $("n-result").textContent = "";
  const body = request();
  try {
    const p = await api("POST", "/preview", body);
    showPreview(p);
    previewed = body;
    $("n-send").disabled = Object.keys(p.by_channel).length === 0;
  } catch (error) { fail(error); }
}

async function send() {
  if (!previewed) return;
  $("n-send").disabled = true;
  try {
    const q = await api("POST", "", previewed);
    $("n-result").textContent = t("notices.queued", { added: fmtNumber(q.added), already: fmtNumber(q.already) });
    previewed = null;
    await outbox();
    await report();
  } catch (error) { fail(error); }
}

async function outbox() {
  const status = await api("GET", "/status");
  $("n-channels").textContent = status.channels.length
    ? t("notices.channels", { channels: status.channels.map((c) => label("channel", c)).join(", ") })
    : t("notices.no_channels");
  const counts = $("n-outbox").tBodies[0];
  counts.replaceChildren();
  for (const r of status.outbox) {
    const tr = document.createElement("tr");
    cell(tr, label("notice_kind", r.kind)); cell(tr, label("channel", r.channel));
    cell(tr, label("notice_state", r.state)); cell(tr, fmtNumber(r.count));
    counts.append(tr);
  }
  const latest = await api("GET", "?limit=50");
  const rows = $("n-latest").tBodies[0];
  rows.replaceChildren();
  for (const n of latest.notices) {
    const tr = document.createElement("tr");
    tr.dataset.notice = n.id;
    cell(tr, fmtDateTime(n.created_at)); cell(tr, n.client_id); cell(tr, label("notice_kind", n.kind));
    cell(tr, label("channel", n.channel)); cell(tr, label("notice_state", n.state)); cell(tr, n.subject);
    rows.append(tr);
  }
  $("n-empty").hidden = latest.notices.length > 0;
}

// The report: what became of the messages created each day, and the opt-outs.
async function report() {
  const query = new URLSearchParams();
  for (const name of ["since", "until"]) { const v = $(`r-${name}`).value; if (v) query.set(name, v); }
  const text = query.toString() ? `?${query}` : "";
  $("r-csv").href = `/desk/api/reports/notices.csv${text}`;
  const response = await fetch(`/desk/api/reports/notices${text}`);
  const data = await response.json();
  if (!response.ok) throw new Error(errorText(data, response.statusText));
  const body = $("r-rows").tBodies[0];
  body.replaceChildren();
  for (const r of data.rows) {
    const tr = document.createElement("tr");
    cell(tr, fmtDate(r.start.slice(0, 10))); cell(tr, label("notice_kind", r.kind)); cell(tr, label("channel", r.channel));
    for (const c of ["messages", "waiting", "sent", "delivered", "failed", "expired", "fallbacks"]) cell(tr, fmtNumber(r[c]));
    body.append(tr);
  }
  $("r-opt-outs").replaceChildren(...data.opt_outs.map((o) => item(t("notices.opt_outs", {
    day: fmtDate(o.start.slice(0, 10)), channel: label("channel", o.channel), source: label("opt_out_source", o.source), count: fmtNumber(o.clients),
  }))));
}
$("r-form").addEventListener("submit", (e) => { e.preventDefault(); report().catch(fail); });

if ($("n-form")) {
  for (const id of ["n-kind", "n-segment", "n-clients", "n-product", "n-message", "n-channel"]) {
    $(id).addEventListener("input", changed);
  }
  $("n-preview").addEventListener("click", preview);
  $("n-send").addEventListener("click", send);
  changed();
}
outbox().then(report).catch(fail);
