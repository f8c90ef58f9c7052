"use strict";
// The supervisor's wallboard: one message a second over the WebSocket.
const $ = (id) => document.getElementById(id);
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text; tr.append(td); return td; }
function mmss(s) { s = Math.round(s); return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`; }
function render(b) {
  $("kpi-waiting").textContent = b.waiting;
  $("kpi-answered").textContent = b.today.answered;
  $("kpi-abandoned").textContent = b.today.abandoned;
  $("kpi-sl").textContent = b.today.service_level == null ? "–" : `${b.today.service_level}%`;
  $("kpi-esc").textContent = b.escalations_waiting;
  const q = $("queues"); q.replaceChildren();
  for (const x of b.queues) {
    const tr = document.createElement("tr"); tr.dataset.queue = x.id;
    cell(tr, x.id + (x.escalation ? " (escalations)" : "")); cell(tr, x.waiting).className = "waiting";
    cell(tr, mmss(x.longest_wait)); cell(tr, x.available); q.append(tr);
  }
  const a = $("agents"); a.replaceChildren();
  for (const x of b.agents) {
    const tr = document.createElement("tr"); tr.dataset.agent = x.id;
    cell(tr, `${x.name} (${x.id})`);
    cell(tr, x.status.replace("_", " ") + (x.reason ? ` (${x.reason})` : "")).className = "st-" + x.status;
    cell(tr, mmss(x.seconds)); a.append(tr);
  }
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
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
