"use strict";
// The supervisor's wallboard: one message a second over the WebSocket. Texts: t() and label()
// of i18n.js, in the supervisor's language; numbers and times as the language writes them.
const $ = (id) => document.getElementById(id);
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.append(td); return td; }
function pct(x) { return x == null ? "–" : t("wallboard.percent", {value: fmtNumber(x)}); }
function mmss(s) { s = Math.round(s); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; }
function render(b) {
  $("kpi-waiting").textContent = b.waiting;
  $("kpi-answered").textContent = b.today.answered;
  $("kpi-abandoned").textContent = b.today.abandoned;
  $("kpi-sl").textContent = pct(b.today.service_level);
  $("kpi-esc").textContent = b.escalations_waiting;
  const q = $("queues"); q.replaceChildren();
  for (const x of b.queues) {
    const tr = document.createElement("tr"); tr.dataset.queue = x.id;
    cell(tr, x.escalation ? t("wallboard.escalation_queue", {queue: x.id}) : x.id); cell(tr, x.waiting).className = "waiting";
    cell(tr, mmss(x.longest_wait)); cell(tr, x.available); q.append(tr);
  }
  const a = $("agents"); a.replaceChildren();
  for (const x of b.agents) {
    const tr = document.createElement("tr"); tr.dataset.agent = x.id;
    cell(tr, t("wallboard.agent_name", {name: x.name, id: x.id}));
    const state = label("state", x.status);
    cell(tr, x.reason ? t("wallboard.state_with_reason", {state, reason: label("pause", x.reason)}) : state).className = "st-" + x.status;
    cell(tr, mmss(x.seconds)); a.append(tr);
  }
  renderCampaigns(b.campaigns || []);
  renderInquiries(b.inquiries);
  renderCluster(b.cluster);
  $("updated").textContent = t("wallboard.updated", {time: fmtTime(new Date())});
}
// Agent campaigns: a row each, and a chart of the last ten minutes kept here (one point a
// second per campaign: lines per agent, and abandonment over the last hour).
const history = new Map();
function renderCampaigns(list) {
  $("campaigns-card").hidden = list.length === 0;
  const table = $("campaigns"); table.replaceChildren();
  for (const c of list) {
    const tr = document.createElement("tr"); tr.dataset.campaign = c.name;
    cell(tr, c.name); cell(tr, label("pacing", c.pacing)).title = c.reason; cell(tr, c.agents); cell(tr, c.lines);
    cell(tr, fmtNumber(c.lines_per_agent)).className = "lines-per-agent";
    cell(tr, c.connected);
    cell(tr, t("wallboard.abandoned_pair", {hour: pct(c.abandoned_last_hour_percent), day: pct(c.abandoned_24_hours_percent)})).className = "abandoned";
    cell(tr, pct(c.occupancy_percent)); cell(tr, c.mean_wait_seconds == null ? "–" : mmss(c.mean_wait_seconds));
    table.append(tr);
    const h = history.get(c.name) || []; h.push([c.lines_per_agent || 0, c.abandoned_last_hour_percent || 0]);
    if (h.length > 600) h.shift(); history.set(c.name, h);
  }
  drawChart(list.length ? history.get(list[0].name) : []);
}
function drawChart(points) {
  const svg = $("campaign-chart"), ns = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  if (!points || points.length < 2) return;
  const top = Math.max(3, ...points.map((p) => Math.max(p[0], p[1])));
  const line = (i, dash) => {
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", points.map((p, k) => `${(k * 600) / (points.length - 1)},${120 - (p[i] / top) * 115}`).join(" "));
    pl.setAttribute("fill", "none"); pl.setAttribute("stroke", "currentColor");
    if (dash) pl.setAttribute("stroke-dasharray", "4 3");
    pl.classList.add(dash ? "abandon-line" : "lines-line"); svg.append(pl);
  };
  line(0, false); line(1, true);
}
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/wallboard/ws");
  ws.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type === "wallboard") render(m); };
  ws.onclose = (e) => {
    if (e.code === 4401) { location.href = "/login"; return; }  // the session ended
    setTimeout(connect, 1000);
  };
}
connect();

// Written inquiries: the backlog, and those past or near their SLA (the breached first).
function renderInquiries(q) {
  $("inquiries-card").hidden = !q;
  if (!q) return;
  for (const k of ["new", "open", "waiting", "breached", "near"]) $(`inq-${k}`).textContent = q[k];
  const rows = $("inq-late"); rows.replaceChildren();
  for (const x of q.late) {
    const tr = document.createElement("tr"); tr.dataset.inquiry = x.id;
    tr.className = x.breached ? "breached" : "near";
    cell(tr, `#INQ-${x.id}`); cell(tr, label("inquiry_kind", x.kind)); cell(tr, label("inquiry_state", x.state));
    cell(tr, x.owner || "—"); cell(tr, x.due ? fmtDateTime(x.due) : (x.breached ? t("wallboard.inq_past") : "—"));
    rows.append(tr);
  }
}

// Several instances: which instance owns which Asterisk node, since when; which are alive.
function renderCluster(c) {
  $("cluster-card").hidden = !c || !c.nodes;
  if (!c || !c.nodes) return;
  const nodes = $("cluster-nodes"); nodes.replaceChildren();
  for (const n of c.nodes) {
    const tr = document.createElement("tr"); tr.dataset.node = n.name;
    cell(tr, n.name); cell(tr, n.owner || t("wallboard.node_unowned")); cell(tr, fmtDateTime(n.owned_since));
    nodes.append(tr);
  }
  const instances = $("cluster-instances"); instances.replaceChildren();
  for (const i of c.instances) {
    const tr = document.createElement("tr"); tr.dataset.instance = i.id;
    cell(tr, i.id); cell(tr, i.node || "—"); cell(tr, i.web_url);
    cell(tr, t(i.alive ? "wallboard.instance_up" : "wallboard.instance_down")).className = i.alive ? "alive" : "dead";
    instances.append(tr);
  }
}
