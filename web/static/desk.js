"use strict";
// The agent desktop: state, screen-pop (pushed over the WebSocket), call controls,
// disposition, client search and edit. Renders with textContent only (no HTML injection).
// Every text it shows is t(key) or label(family, value) of i18n.js, in the agent's language.
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
let liveCall = null, dispCall = null, popCall = null, lastCall = null;
window.__pops = [];  // render timings, read by the benchmark and the tests

async function api(method, path, body) {
  const r = await fetch(path, {method, credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: body === undefined ? undefined : JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(errorText(data, r.statusText));
  return data;
}
function el(tag, text, cls) { const e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
function dl(pairs) { const d = el("dl"); for (const [k, v] of pairs) { d.append(el("dt", k), el("dd", v == null || v === "" ? "—" : String(v))); } return d; }
function list(title, items, fmt) {
  const s = el("div"); s.append(el("h3", title));
  if (!items || !items.length) { s.append(el("p", t("client.none"), "muted")); return s; }
  const ul = el("ul"); for (const i of items) ul.append(el("li", fmt(i))); s.append(ul); return s;
}
const when = fmtDateTime;
function say(id, text, bad) { const m = $(id); m.textContent = text; m.className = bad ? "msg error" : "msg"; }

function campaignLines(pop) {
  // An agent campaign's call: what it is for and what to say (core.dialler, the screen-pop).
  const k = pop.campaign;
  return dl([[t("pop.campaign"), t("pop.campaign_name", {name: k.name, mode: label("pacing", k.mode)})],
    [t("pop.calling_number"), pop.number], [t("pop.purpose"), k.purpose], [t("pop.script"), k.script]]);
}

function renderRecord(target, pop) {
  const c = pop.client;
  target.replaceChildren();
  target.append(el("p", c.address_as, "greet"));
  if (pop.campaign) target.append(campaignLines(pop));
  const alerts = el("p", null, "alerts");
  for (const a of c.alerts) alerts.append(el("span", label("alert", a)));
  target.append(alerts);
  target.append(dl([[t("client.name"), c.name], [t("client.type"), label("client_type", c.client_type)], [t("client.language"), c.language],
    [t("client.manager"), c.manager ? t("client.manager_name", {name: c.manager.name, id: c.manager.id}) : null],
    [t("client.overdue_debt"), c.overdue_debt ? t("client.yes") : t("client.no")],
    [t("client.id_document"), c.document_expiry ? t("client.id_document_until", {date: fmtDate(c.document_expiry), state: label("document", c.document_state)}) : label("document", "unknown")],
    [t("client.phones"), c.phones.join(", ")],
    [t("client.opted_out"), (c.opted_out || []).map((x) => label("channel", x)).join(", ") || null]]));
  if (pop.ivr_path !== undefined && pop.stage !== "record" && !pop.campaign) target.append(callFacts(pop));
  target.append(list(t("client.callbacks"), pop.callbacks, (b) => `${when(b.due_at)} · ${b.reason || ""}`));
  target.append(list(t("client.notes"), pop.interactions, (i) => `${when(i.at)} · ${i.category ? label("category", i.category) : ""} · ${i.note || ""}${i.agent_id ? ` (${i.agent_id})` : ""}`));
  target.append(list(t("client.messages"), pop.messages || [], (m) => `${when(m.at)} · ${label("channel", m.channel)} · ${label("notice_kind", m.kind)} · ${m.subject} · ${label("notice_state", m.state)}`));
  target.append(list(t("client.inquiries"), pop.inquiries || [], (i) => `${when(i.at)} · #INQ-${i.id} · ${label("inquiry_channel", i.channel)} · ${label("inquiry_kind", i.kind)} · ${i.subject} · ${label("inquiry_state", i.state)}`));
  target.append(list(t("client.calls"), pop.history, (h) => `${when(h.started_at)} · ${h.outcome || "…"} · ${h.disposition || t("client.no_disposition")} · ${h.agent_id || ""}`));
  target.append(list(t("client.nps"), pop.nps, (n) => `${when(n.at)} · ${n.question}: ${n.score}`));
  const ph = el("div"); ph.append(el("h3", t("client.loans")));
  ph.append(el("p", t("client.loans_missing"), "muted")); target.append(ph);
}
function callFacts(pop) {
  return dl([[t("pop.calling_about"), pop.intent], [t("pop.queue"), pop.queue], [t("pop.ivr_path"), (pop.ivr_path || []).join(" › ")]]);
}

function renderPop(msg) {
  const pop = msg.pop; popCall = pop.call_id;
  if (pop.campaign) campaignCalls.add(pop.call_id);
  $("pop-empty").hidden = true;
  const body = $("pop-body"); body.hidden = false;
  const form = $("new-client");
  if (pop.known) { form.hidden = true; renderRecord(body, pop); }
  else {
    body.replaceChildren(el("p", pop.campaign ? t("pop.calling", {number: pop.number || ""}) : t("pop.unknown_caller", {number: pop.caller_number || ""}), "greet"),
      pop.campaign ? campaignLines(pop) : callFacts(pop));
    form.hidden = false; $("nc-phone").value = pop.new_client.phone; $("nc-name").value = pop.new_client.name;
  }
  $("pop-title").textContent = t(pop.campaign ? "pop.outbound" : pop.stage === "offered" ? "pop.incoming" : "pop.on_the_call");
  body.dataset.callId = pop.call_id;
  if (pop.stage === "connected") setLive(pop.call_id);
  requestAnimationFrame(() => setTimeout(() => {
    window.__pops.push({call_id: pop.call_id, stage: pop.stage, event_at: msg.event_at * 1000,
      rendered_at: performance.timeOrigin + performance.now()});
  }, 0));
}

function setLive(callId) {
  liveCall = callId;
  $("call-line").textContent = callId ? t("desk.live_call", {call_id: callId}) : t("desk.no_live_call");
  for (const b of ["btn-hangup", "btn-hold", "btn-resume", "btn-blind", "btn-consult", "btn-complete", "btn-cancel", "btn-callback", "btn-rec-pause", "btn-rec-resume"])
    $(b).disabled = !callId;
}

function callEnded(msg) {
  if (liveCall === msg.call_id) setLive(null);
  $("pop-title").textContent = t(msg.missed ? "pop.missed" : "pop.last_call");
  if (!msg.missed) { showDisposition(msg.call_id); lastCall = msg.call_id; $("recording").hidden = false; $("rec-list").replaceChildren(); }
}
// The last call's recordings: played in the page (the server answers Range requests, so the
// player can seek) or downloaded; finished a moment after the hang-up.
async function loadRecordings() {
  const box = $("rec-list"); box.replaceChildren();
  try {
    const r = await api("GET", `/desk/api/calls/${lastCall}/recordings`);
    if (!r.recordings.length) box.append(el("p", t("rec.not_recorded"), "muted"));
    for (const rec of r.recordings) {
      if (rec.deleted_at) { box.append(el("p", t("rec.deleted", {when: when(rec.deleted_at)}), "muted")); continue; }
      if (!rec.audio) { box.append(el("p", t("rec.unfinished"), "muted")); continue; }
      const player = el("audio"); player.controls = true; player.preload = "none"; player.src = rec.audio;
      const a = el("a", t("rec.download")); a.href = rec.download;
      const stretches = rec.paused.map((p) => t("rec.stretch", {from: fmtNumber(p.from_second), to: fmtNumber(p.to_second)})).join(", ");
      const seconds = fmtNumber(rec.seconds);
      box.append(el("p", stretches ? t("rec.length_paused", {seconds, stretches}) : t("rec.length", {seconds})), player, a);
    }
  } catch (err) { box.append(el("p", err.message, "error")); }
}
$("btn-rec-load").onclick = loadRecordings;
const campaignCalls = new Set();  // calls of agent campaigns: their disposition is a campaign's
function showDisposition(callId, campaign) {
  if (campaign || campaignCalls.has(callId)) {
    dispCall = callId; $("campaign-disposition").hidden = false;
    $("cdisp-title").textContent = t("cdisp.title_call", {call_id: callId}); $("cdisp-code").focus();
    return;
  }
  dispCall = callId; $("disposition").hidden = false;
  $("disp-title").textContent = t("disp.title_call", {call_id: callId});
  const first = document.querySelector('#disp-form input[name="category"]'); if (first) first.focus();
}

function renderState(s) {
  const st = $("state"); const state = label("state", s.status);
  st.textContent = s.reason && s.status === "paused" ? t("desk.state_with_reason", {state, reason: label("pause", s.reason)}) : state;
  st.className = "st-" + s.status; $("state-time").textContent = s.seconds ? t("desk.seconds", {seconds: fmtNumber(s.seconds)}) : "";
  if (s.pending_disposition && dispCall !== s.pending_disposition && !s.live_call) showDisposition(s.pending_disposition, s.pending_campaign);
  if (s.live_call && popCall === s.live_call && liveCall !== s.live_call && s.status === "on_call") setLive(s.live_call);
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/desk/ws");
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data);
    if (msg.type === "screenpop") renderPop(msg);
    else if (msg.type === "call_ended") callEnded(msg);
    else if (msg.type === "state") renderState(msg);
    // A written inquiry given to this agent: inquiries.js shows it.
    else if (msg.type === "inquiry" || msg.type === "inquiry_escalated") window.dispatchEvent(new CustomEvent("inquiry", {detail: msg}));
  };
  ws.onclose = (e) => {
    // 4401: the session ended (logged out, revoked, demoted): log in again, do not retry.
    if (e.code === 4401) { location.href = "/login"; return; }
    $("state").textContent = t("desk.reconnecting");
    setTimeout(connect, 1000);
  };
}

async function setState(state, reason) {
  try { renderState(await api("POST", "/desk/api/state", {state, reason})); say("state-msg", ""); }
  catch (e) { say("state-msg", e.message, true); }
}
$("btn-available").onclick = () => setState("available");
$("btn-pause").onclick = () => setState("paused", $("pause-reason").value);
$("btn-logout-acd").onclick = () => setState("logged_out");

async function control(path, body, done) {
  try { await api("POST", `/desk/api/calls/${liveCall}/${path}`, body); say("call-msg", done); }
  catch (e) { say("call-msg", e.message, true); }
}
$("btn-hangup").onclick = () => control("hangup", undefined, t("desk.hung_up"));
$("btn-hold").onclick = () => control("hold", undefined, t("desk.on_hold"));
$("btn-resume").onclick = () => control("resume", undefined, t("desk.resumed"));
$("btn-rec-pause").onclick = () => control("recording/pause", undefined, t("desk.recording_paused"));
$("btn-rec-resume").onclick = () => control("recording/resume", undefined, t("desk.recording_resumed"));
$("btn-blind").onclick = () => control("transfer", {to: $("xfer-to").value, mode: "blind"}, t("desk.transferred"));
$("btn-consult").onclick = () => control("transfer", {to: $("xfer-to").value, mode: "attended"}, t("desk.consulting"));
$("btn-complete").onclick = () => control("transfer/complete", undefined, t("desk.transfer_completed"));
$("btn-cancel").onclick = () => control("transfer/cancel", undefined, t("desk.consult_cancelled"));
function isoLocal(v) { return v ? new Date(v).toISOString() : null; }
$("callback-form").onsubmit = async (e) => {
  e.preventDefault();
  try { await api("POST", `/desk/api/calls/${liveCall || dispCall}/callback`, {due_at: isoLocal($("cb-due").value), note: $("cb-note").value}); say("call-msg", t("desk.callback_scheduled")); }
  catch (err) { say("call-msg", err.message, true); }
};
$("disp-form").onsubmit = async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = {category: f.get("category"), outcome: f.get("outcome"), note: f.get("note"),
    follow_up: f.get("follow_up"), follow_up_due: isoLocal(f.get("follow_up_due"))};
  try {
    const r = await api("POST", `/desk/api/calls/${dispCall}/disposition`, body);
    say("disp-msg", t("disp.saved", {disposition: r.disposition})); e.target.reset(); $("disposition").hidden = true; dispCall = null;
  } catch (err) { say("disp-msg", err.message, true); }
};
$("cdisp-form").onsubmit = async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const body = {disposition: f.get("disposition"), note: f.get("note") || null};
  if (String(body.disposition).startsWith("callback")) body.due = isoLocal(f.get("due"));
  try {
    const r = await api("POST", `/desk/api/calls/${dispCall}/disposition`, body);
    say("cdisp-msg", t("disp.saved", {disposition: r.disposition})); e.target.reset(); $("campaign-disposition").hidden = true; dispCall = null;
  } catch (err) { say("cdisp-msg", err.message, true); }
};
// Preview: the next contact held for this agent, then Call or Skip (with a reason).
let previewed = null;
$("btn-preview").onclick = async () => {
  try {
    const r = await api("GET", "/desk/api/preview");
    previewed = r.contact;
    const body = $("preview-body");
    if (!previewed) { body.hidden = true; $("preview-form").hidden = true; say("preview-msg", t("preview.nobody")); return; }
    body.replaceChildren(el("p", `${previewed.name || t("preview.contact")} · ${previewed.number}`, "greet"),
      dl([[t("pop.campaign"), previewed.campaign], [t("preview.attempt"), previewed.attempt], [t("pop.purpose"), previewed.purpose], [t("pop.script"), previewed.script]]));
    body.hidden = false; $("preview-form").hidden = false; say("preview-msg", "");
  } catch (err) { say("preview-msg", err.message, true); }
};
$("btn-preview-call").onclick = async () => {
  if (!previewed) return;
  try {
    const r = await api("POST", `/desk/api/preview/${previewed.contact_id}/call`);
    say("preview-msg", t("preview.calling", {number: previewed.number})); $("preview-form").hidden = true; previewed = null;
    campaignCalls.add(r.call_id);
  } catch (err) { say("preview-msg", err.message, true); }
};
$("preview-form").onsubmit = async (e) => {
  e.preventDefault();
  if (!previewed) return;
  try {
    await api("POST", `/desk/api/preview/${previewed.contact_id}/skip`, {reason: $("preview-reason").value});
    say("preview-msg", t("preview.skipped", {number: previewed.number})); $("preview-form").hidden = true; $("preview-body").hidden = true;
    previewed = null; e.target.reset();
  } catch (err) { say("preview-msg", err.message, true); }
};
$("new-client").onsubmit = async (e) => {
  e.preventDefault();
  try {
    const r = await api("POST", "/desk/api/clients", {name: $("nc-name").value, phones: $("nc-phone").value, language: $("nc-lang").value, client_type: "new"});
    $("new-client").hidden = true; openClient(r.client_id, $("pop-body"));
  } catch (err) { alert(err.message); }
};

async function openClient(id, target) {
  target = target || $("client-view");
  const rec = await api("GET", `/desk/api/clients/${id}`);
  target.hidden = false; renderRecord(target, rec);
  const form = el("form", null, "edit-client");
  form.append(el("h3", t("client.edit")));
  for (const [name, text, value] of [["name", t("client.name"), rec.client.name], ["phones", t("client.edit_phones"), rec.client.phones.join("; ")],
    ["language", t("client.language"), rec.client.language || ""], ["document_expiry", t("client.edit_document"), rec.client.document_expiry || ""]]) {
    const l = el("label", text); l.htmlFor = `${target.id}-edit-${name}`; const i = el("input"); i.id = l.htmlFor; i.name = name; i.value = value;
    form.append(l, i);
  }
  // The channels the client asked not to get messages by: the contact policy skips them.
  const optOuts = el("fieldset", null, "opt-outs"); optOuts.append(el("legend", t("client.opted_out")));
  for (const channel of ["sms", "viber", "email", "letter"]) {
    const box = el("input"); box.type = "checkbox"; box.name = "opted_out"; box.value = channel;
    box.checked = (rec.client.opted_out || []).includes(channel);
    const l = el("label", null, "chip"); l.append(box, " ", label("channel", channel)); optOuts.append(l);
  }
  form.append(optOuts);
  const b = el("button", t("client.save")); b.type = "submit"; form.append(b);
  const msg = el("span", "", "msg"); msg.setAttribute("role", "status"); form.append(msg);
  form.onsubmit = async (e) => {
    e.preventDefault(); const f = new FormData(form); const body = {opted_out: []};
    for (const [k, v] of f.entries()) { if (k === "opted_out") body.opted_out.push(v); else body[k] = v; }
    try { const r = await api("PATCH", `/desk/api/clients/${id}`, body); msg.textContent = t("client.saved", {count: fmtNumber(r.changed)}); }
    catch (err) { msg.textContent = err.message; msg.className = "msg error"; }
  };
  target.append(form);
  const call = el("button", t("client.call", {number: rec.client.phones[0] || ""}), "call-client"); call.type = "button";
  call.disabled = !rec.client.phones.length;
  call.onclick = async () => {
    try { const r = await api("POST", "/desk/api/call", {client_id: id}); say("call-msg", t("desk.calling_as", {number: r.number, presented: r.presented})); }
    catch (err) { say("call-msg", err.message, true); }
  };
  target.append(call);
  target.append(list(t("client.history"), rec.audit, (a) => `${when(a.at)} · ${a.agent_id}: ${a.field} ${a.old || "—"} → ${a.new || "—"}`));
}
$("search-form").onsubmit = async (e) => {
  e.preventDefault();
  const ul = $("search-results"); ul.replaceChildren();
  try {
    const r = await api("GET", `/desk/api/clients?q=${encodeURIComponent($("search-q").value)}`);
    if (!r.clients.length) ul.append(el("li", t("search.none")));
    for (const c of r.clients) {
      const li = el("li"); const b = el("button", `${c.name} · ${c.phones.join(", ")}`); b.type = "button";
      b.onclick = () => openClient(c.id); li.append(b); ul.append(li);
    }
  } catch (err) { ul.append(el("li", err.message, "error")); }
};

api("GET", "/desk/api/me").then((me) => {
  const dlist = $("xfer-targets"); for (const target of me.targets) { const o = el("option"); o.value = target; dlist.append(o); }
  renderState(me);
}).catch(() => {});
connect();

$("dial-form").onsubmit = async (e) => {
  e.preventDefault();
  try { const r = await api("POST", "/desk/api/call", {number: $("dial-number").value}); say("call-msg", t("desk.calling_as", {number: r.number, presented: r.presented})); }
  catch (err) { say("call-msg", err.message, true); }
};

// The agent's language: kept on their row, so the page is loaded again in it.
$("desk-language").onchange = async (e) => {
  try { await api("POST", "/desk/api/me/language", {language: e.target.value}); say("state-msg", t("desk.language_saved")); location.reload(); }
  catch (err) { say("state-msg", err.message, true); }
};
