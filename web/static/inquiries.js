"use strict";
// The desk's written inquiries: the agent's own (given by the ACD, or taken) and those
// waiting in the queues, one thread at a time with its messages, and the answer, started
// from a template in the client's language, sent by the channel the inquiry came in.
// Renders with textContent only (a client's words are never markup).
(() => {
  const panel = document.getElementById("inquiries");
  if (!panel) return;
  const me = panel.dataset.agent;
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  let open = null;  // the inquiry shown

  async function call(method, path, body) {
    const r = await fetch(path, {method, credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(errorText(data, r.statusText));
    return data;
  }
  function note(text, bad) { const m = $("inq-msg"); m.textContent = text; m.className = bad ? "msg error" : "msg"; }
  function item(i) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.inquiry = i.id;
    b.textContent = `#INQ-${i.id} · ${label("inquiry_kind", i.kind)} · ${i.subject} · ${label("inquiry_state", i.state)}`;
    b.onclick = () => show(i.id);
    li.append(b);
    return li;
  }
  async function refresh() {
    try {
      const mine = await call("GET", `/desk/api/inquiries?owner=${encodeURIComponent(me)}&limit=50`);
      const waiting = await call("GET", "/desk/api/inquiries?state=new&limit=50");
      $("inq-mine").replaceChildren(...mine.inquiries.filter((i) => i.state !== "closed").map(item));
      $("inq-waiting").replaceChildren(...waiting.inquiries.filter((i) => !i.owner).map(item));
      if (!mine.inquiries.length) $("inq-mine").append(Object.assign(document.createElement("li"), {textContent: t("inq.none"), className: "muted"}));
    } catch (err) { note(err.message, true); }
  }
  async function show(id) {
    try {
      const q = await call("GET", `/desk/api/inquiries/${id}`);
      open = q;
      $("inq-view").hidden = false;
      $("inq-subject").textContent = `#INQ-${q.id} · ${q.subject}`;
      const due = q.sla.first_response_due || q.sla.resolution_due;
      $("inq-facts").textContent = [label("inquiry_channel", q.channel), label("inquiry_kind", q.kind),
        label("inquiry_state", q.state), q.client_name || q.sender_name || q.sender,
        due ? t("inq.due", {at: fmtDateTime(due)}) : null, q.sla.breached ? t("inq.breached") : null]
        .filter(Boolean).join(" · ");
      const thread = $("inq-thread");
      thread.replaceChildren();
      for (const m of q.messages) {
        const li = document.createElement("li");
        li.className = `message ${m.direction}`;
        li.dataset.direction = m.direction;
        const head = document.createElement("p");
        head.className = "muted";
        const who = {who: m.author || ""};
        const by = m.direction === "in" ? t("inq.from_client") : m.direction === "out" ? t("inq.answer_by", who) : t("inq.note_by", who);
        head.textContent = [fmtDateTime(m.at), by, m.send_state ? label("inquiry_send", m.send_state) : null, m.error]
          .filter(Boolean).join(" · ");
        const body = document.createElement("p");
        body.className = "text";
        body.textContent = m.text;
        li.append(head, body);
        for (const a of m.attachments) {
          const link = document.createElement("a");
          link.href = `/desk/api/inquiries/${q.id}/attachments/${a.id}`;
          link.textContent = t("inq.attachment", {name: a.filename, size: fmtNumber(a.size)});
          li.append(link);
        }
        thread.append(li);
      }
      const pick = $("inq-template");
      pick.replaceChildren(Object.assign(document.createElement("option"), {value: "", textContent: "—"}));
      for (const tpl of q.templates) pick.append(Object.assign(document.createElement("option"), {value: tpl.text, textContent: label("inq_template", tpl.name)}));
      $("inq-kind").value = q.kind;
      $("inq-link").hidden = q.client_id != null;  // an unknown sender: link or make a client
      $("inq-link-results").replaceChildren();
      $("btn-inq-take").hidden = q.owner === me;
      $("inq-reply").hidden = q.state === "closed";
      note("");
    } catch (err) { note(err.message, true); }
  }
  $("inq-template").onchange = (e) => { if (e.target.value) $("inq-text").value = e.target.value; };
  $("inq-reply").onsubmit = async (e) => {
    e.preventDefault();
    if (!open) return;
    try {
      await call("POST", `/desk/api/inquiries/${open.id}/reply`, {text: $("inq-text").value});
      $("inq-text").value = "";
      await show(open.id); await refresh();
      note(t("inq.sent"));  // after show(), which clears the line
    } catch (err) { note(err.message, true); }
  };
  async function act(path, done) {
    if (!open) return;
    try { await call("POST", `/desk/api/inquiries/${open.id}/${path}`, {}); await show(open.id); await refresh(); note(done); }
    catch (err) { note(err.message, true); }
  }
  async function link(body) {
    if (!open) return;
    try {
      await call("POST", `/desk/api/inquiries/${open.id}/client`, body);
      await show(open.id); note(t("inq.linked"));
    } catch (err) { note(err.message, true); }
  }
  $("btn-inq-find").onclick = async () => {
    const ul = $("inq-link-results"); ul.replaceChildren();
    try {
      const r = await call("GET", `/desk/api/clients?q=${encodeURIComponent($("inq-link-q").value)}`);
      if (!r.clients.length) ul.append(Object.assign(document.createElement("li"), {textContent: t("inq.no_client")}));
      for (const c of r.clients) {
        const li = document.createElement("li");
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = t("inq.link_to", {name: c.name, phones: c.phones.join(", ")});
        b.onclick = () => link({client_id: c.id});
        li.append(b); ul.append(li);
      }
    } catch (err) { note(err.message, true); }
  };
  $("btn-inq-new-client").onclick = () => link({new: true});
  $("inq-kind").onchange = async (e) => {
    if (!open) return;
    try {
      await call("POST", `/desk/api/inquiries/${open.id}/kind`, {kind: e.target.value});
      await show(open.id); await refresh(); note(t("inq.kind_changed"));
    } catch (err) { note(err.message, true); }
  };
  $("btn-inq-take").onclick = () => act("assign", t("inq.taken"));
  $("btn-inq-escalate").onclick = () => act("escalate", t("inq.escalated"));
  $("btn-inq-close").onclick = () => act("close", t("inq.closed"));
  $("btn-inq-refresh").onclick = refresh;
  window.addEventListener("inquiry", async (e) => {
    await refresh();
    // One escalated to a supervisor is nobody's list's: it opens at once.
    if (e.detail.type === "inquiry_escalated") await show(e.detail.id);
    note(e.detail.type === "inquiry_escalated" ? t("inq.escalated_to_you", {id: e.detail.id}) : t("inq.given", {id: e.detail.id}));
  });
  refresh();
})();
