"use strict";
// Over 500 lines: one script for the console's pages (they share the API call, the forms over
// JSON, the problems at their nodes and the messages); each page's part is a section below.
// The admin console (web/admin_pages.py): each page fills itself from the /desk/api routes
// that machines call under /api, so every change passes the same checks and lands on the
// audit trail. Nothing here decides anything: it shows what the server answers. Its words
// are the user's language's (i18n.js: t(), label(), fmtDateTime(), errorText()).
const $ = (id) => document.getElementById(id);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else if (v !== false && v != null) node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (response.headers.get("content-type") || "").includes("json");
  const data = json ? await response.json() : await response.text();
  if (!response.ok) {
    // The text for the error's id, or the server's own message (a 409 names who published).
    const error = new Error(json ? errorText(data, response.statusText) : response.statusText);
    error.data = json ? data : {};
    throw error;
  }
  return data;
}

function say(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "msg";
}

async function attempt(what, action) {
  try {
    return await action();
  } catch (error) {
    say(t("console.failed", { what, message: error.message }), true);
    return undefined;
  }
}

// ---- forms over JSON: text and numbers as inputs, yes/no as a box, a mapping of texts (a
// menu's keys, a prompt's languages) as rows, anything else as JSON text ---------------------
let fieldCount = 0;

function isTextMap(value) {
  return value && typeof value === "object" && !Array.isArray(value) &&
    Object.values(value).every((v) => typeof v === "string");
}

function kvRow(key, value, fixed = false) {
  return el("div", { class: "kv-row" },
    el("input", { class: "kv-key", value: key, "aria-label": t("console.key"), readonly: fixed }),
    el("input", { class: "kv-value", value, "aria-label": t("console.value_of", { key }), readonly: fixed }),
    fixed ? "" : el("button", { type: "button", text: "−", title: t("console.remove"), onclick: (e) => e.target.parentElement.remove() }));
}

// Each field is named in the user's language, with the key the YAML and the API use beside it.
// A field that is unset (null), or that may be (``optional``), is a text box left empty for
// "none".
function fieldsFor(object, { readOnly = ["type"], optional = [] } = {}) {
  const box = el("div", { class: "fields" });
  for (const [key, value] of Object.entries(object)) {
    const id = `f${++fieldCount}`;
    const fixed = readOnly.includes(key);  // shown, not to be changed (a node's type)
    box.append(el("label", { for: id }, label("field", key), " ", el("code", { class: "field-key", text: key })));
    let input;
    if (value === null || (typeof value === "string" && optional.includes(key))) {
      input = el("input", { id, value: value ?? "", "data-key": key, "data-kind": "text", "data-nullable": "1", readonly: fixed });
    } else if (typeof value === "boolean") {
      input = el("input", { id, type: "checkbox", "data-key": key, "data-kind": "bool", disabled: fixed });
      input.checked = value;
    } else if (typeof value === "number") {
      input = el("input", { id, type: "number", value: String(value), "data-key": key, "data-kind": "number", readonly: fixed });
    } else if (typeof value === "string") {
      input = el("input", { id, value, "data-key": key, "data-kind": "text", readonly: fixed });
    } else if (isTextMap(value)) {
      const rows = el("div", { class: "kv", id, "data-key": key, "data-kind": "map" });
      for (const [k, v] of Object.entries(value)) rows.append(kvRow(k, v, fixed));
      input = el("div", {}, rows, fixed ? "" :
        el("button", { type: "button", text: t("console.add_row"), onclick: () => rows.append(kvRow("", "")) }));
    } else {
      input = el("textarea", { id, rows: 2, "data-key": key, "data-kind": "json", readonly: fixed });
      input.value = JSON.stringify(value);
    }
    box.append(input);
  }
  return box;
}

function readFields(box, original) {
  const out = { ...original };
  for (const input of box.querySelectorAll("[data-key]")) {
    const key = input.dataset.key;
    const kind = input.dataset.kind;
    if (kind === "bool") out[key] = input.checked;
    else if (kind === "number") out[key] = input.value === "" ? null : Number(input.value);
    else if (kind === "text") out[key] = input.value === "" && input.dataset.nullable ? null : input.value;
    else if (kind === "map") {
      out[key] = {};
      for (const row of input.querySelectorAll(".kv-row")) {
        const k = row.querySelector(".kv-key").value.trim();
        if (k) out[key][k] = row.querySelector(".kv-value").value;
      }
    } else {
      try { out[key] = JSON.parse(input.value); } catch { throw new Error(t("console.not_json", { key })); }
    }
  }
  return out;
}

// ---- the flow editor ---------------------------------------------------------------------
const flow = { name: "", base: null, definition: null, live: null };

function flowApi(path = "") { return `/desk/api/flows/${encodeURIComponent(flow.name)}${path}`; }

function showProblems(problems, whole = t("console.whole_flow")) {
  const box = $("problems");
  box.replaceChildren();
  for (const node of document.querySelectorAll("[data-node]")) {
    node.classList.remove("bad");
    node.querySelector(".node-problems").replaceChildren();
  }
  if (!problems.length) { box.append(el("p", { class: "msg", text: t("console.no_problems") })); return; }
  const list = el("ul", { class: "problems" });
  for (const p of problems) {
    const where = p.node ? el("a", { href: `#node-${p.node}`, text: p.at }) : el("span", { text: p.at || whole });
    list.append(el("li", {}, where, `: ${p.message}`));
    const node = p.node && document.getElementById(`node-${p.node}`);
    if (node) {
      node.classList.add("bad");
      node.open = true;
      node.querySelector(".node-problems").append(el("li", { class: "problem", text: `${p.at}: ${p.message}` }));
    }
  }
  box.append(list);
}

function renderFlow(definition) {
  const nodes = $("nodes");
  nodes.replaceChildren();
  for (const [name, node] of Object.entries(definition.nodes)) {
    nodes.append(el("details", { class: "node", id: `node-${name}`, "data-node": name },
      el("summary", { text: `${name} · ${node.type}` }),
      el("ul", { class: "node-problems" }),
      fieldsFor(node)));
  }
  const prompts = $("prompts");
  prompts.replaceChildren();
  for (const [name, prompt] of Object.entries(definition.prompts || {})) {
    prompts.append(el("details", { class: "node prompt", id: `prompt-${name}`, "data-prompt": name },
      el("summary", { text: name }), fieldsFor(prompt),
      ...(definition.languages || []).map((lang) => uploadControl(name, lang))));
  }
}

// A recording instead of the synthesised text: the file goes to the server as it is, which
// checks it (audio, at most two minutes), converts it and puts it in the draft.
function uploadControl(prompt, lang) {
  const id = `f${++fieldCount}`;
  const file = el("input", { id, type: "file", accept: "audio/*" });
  const send = async () => attempt(t("console.recording_of", { prompt, lang }), async () => {
    if (!file.files.length) throw new Error(t("console.choose_file"));
    const response = await fetch(flowApi(`/draft/prompts/${encodeURIComponent(prompt)}/${lang}`), {
      method: "PUT",
      headers: { "Content-Type": file.files[0].type || "application/octet-stream", "X-CSRF-Token": CSRF },
      body: file.files[0],
    });
    const data = await response.json();
    if (!response.ok) throw new Error(errorText(data, response.statusText));
    say(t("console.recording_plays", { prompt, lang }));
    await loadFlow();
  });
  return el("div", { class: "upload" }, el("label", { for: id, text: t("console.recording", { lang }) }), file,
    el("button", { type: "button", text: t("console.upload", { lang }), onclick: send }));
}

function collectFlow() {
  const definition = structuredClone(flow.definition);
  for (const box of document.querySelectorAll("[data-node]")) {
    const name = box.dataset.node;
    definition.nodes[name] = readFields(box.querySelector(".fields"), definition.nodes[name]);
  }
  for (const box of document.querySelectorAll("[data-prompt]")) {
    const name = box.dataset.prompt;
    definition.prompts[name] = readFields(box.querySelector(".fields"), definition.prompts[name]);
  }
  return definition;
}

function testNumbers() {
  return $("test-numbers").value.split(",").map((n) => n.trim()).filter(Boolean);
}

async function showDiagram(target, which) {
  const response = await fetch(flowApi(`/diagram.svg?version=${which}`));
  if (!response.ok) { target.replaceChildren(); return; }
  target.innerHTML = await response.text();  // drawn and escaped on the server
  for (const link of target.querySelectorAll("a")) {
    link.addEventListener("click", (event) => {
      const href = link.getAttribute("href") || link.getAttribute("xlink:href") || "";
      const node = document.getElementById(href.replace(/^#/, ""));
      if (node) { event.preventDefault(); node.open = true; node.scrollIntoView({ block: "center" }); }
    });
  }
}

async function loadFlow() {
  const draft = await api("GET", flowApi("/draft"));
  flow.definition = draft.definition;
  flow.base = draft.base_version;
  const state = { version: draft.base_version, when: fmtDateTime(draft.updated_at), trial: draft.trial_version };
  $("draft-state").textContent = !draft.saved
    ? t("console.no_draft", state)
    : t(draft.trial_version ? "console.draft_state_trial" : "console.draft_state", state);
  $("test-numbers").value = draft.test_numbers.join(", ");
  renderFlow(draft.definition);
  showProblems(draft.problems);
  await showDiagram($("diagram"), draft.saved ? "draft" : "active");
  await loadVersions();
  await annotateNodes();
}

async function loadVersions() {
  const { versions } = await api("GET", flowApi("/versions"));
  flow.live = (versions.find((v) => v.active) || {}).version;
  const body = $("versions");
  body.replaceChildren();
  for (const v of versions) {
    const actions = el("td");
    if (!v.active && v.status === "published") {
      actions.append(
        el("button", { type: "button", text: t("console.compare"), onclick: () => showDiff(v.version, "active") }),
        el("button", { type: "button", text: t("console.rollback"), onclick: () => rollback(v.version) }));
    }
    if (v.status === "scheduled") {
      actions.append(el("button", { type: "button", text: t("console.cancel"), onclick: () => cancelScheduled(v.version) }));
    }
    body.append(el("tr", { "data-version": v.version },
      el("td", { text: v.version }), el("td", { text: v.active ? t("console.live") : label("version_status", v.status) }),
      el("td", { text: fmtDateTime(v.published_at) }),
      el("td", { text: v.published_by || "" }), el("td", { text: v.note || "" }), actions));
  }
}

async function showDiff(from, to) {
  const diff = await api("GET", flowApi(`/diff?from=${from}&to=${to}`));
  const pre = $("diff");
  pre.hidden = false;
  pre.replaceChildren(...diff.text.split("\n").map((line) => el("span", {
    class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "", text: `${line}\n`,
  })));
  if (!diff.text) pre.textContent = t("console.no_differences");
}

async function rollback(version) {
  await attempt(t("console.rolling_back"), async () => {
    const done = await api("POST", flowApi("/rollback"), { to: version, active_version: flow.live });
    say(t("console.rolled_back", { version, new_version: done.version }));
    await loadVersions();
  });
}

async function cancelScheduled(version) {
  await attempt(t("console.cancel"), async () => {
    await api("DELETE", flowApi(`/versions/${version}/schedule`));
    say(t("console.cancelled", { version }));
    await loadVersions();
  });
}

async function saveDraft() {
  const saved = await api("PUT", flowApi("/draft"), {
    definition: collectFlow(), test_numbers: testNumbers(), base_version: flow.base,
  });
  flow.definition = saved.definition;
  showProblems(saved.problems);
  return saved;
}

function initFlow(page) {
  flow.name = page.dataset.flow;
  $("check").addEventListener("click", () => attempt(t("console.check"), async () => {
    const checked = await api("POST", flowApi("/draft/check"), { definition: collectFlow() });
    showProblems(checked.problems);
    say(t(checked.ok ? "console.flow_ok" : "console.flow_problems"), !checked.ok);
  }));
  $("save").addEventListener("click", () => attempt(t("console.save"), async () => {
    const saved = await saveDraft();
    say(saved.trial_version
      ? t("console.draft_saved_trial", { numbers: saved.test_numbers.join(", ") })
      : t(saved.test_numbers.length ? "console.draft_saved_waiting" : "console.draft_saved"));
    await loadFlow();
  }));
  $("discard").addEventListener("click", () => attempt(t("console.discard"), async () => {
    await api("DELETE", flowApi("/draft"));
    say(t("console.draft_discarded"));
    await loadFlow();
  }));
  $("publish").addEventListener("click", () => attempt(t("console.publish"), async () => {
    await saveDraft();
    const at = $("publish-at").value;
    const done = await api("POST", flowApi("/publish"), {
      note: $("note").value || null, at: at ? new Date(at).toISOString() : null,
    });
    say(done.scheduled_for
      ? t("console.scheduled", { version: done.version, when: fmtDateTime(done.scheduled_for) })
      : t(done.changed ? "console.published" : "console.unchanged", { version: done.version }));
    await loadFlow();
  }));
  loadFlow().catch(loadingFailed);
  setInterval(annotateNodes, 5000);
}

// ---- the live view per node: callers there now, and today's calls that reached it and left
async function liveCounts() {
  try {
    return (await api("GET", flowApi("/live"))).nodes;
  } catch {
    return null;  // the figures are a help, never a reason to stop the page
  }
}

async function annotateNodes() {
  const counts = await liveCounts();
  for (const box of document.querySelectorAll("[data-node]")) {
    const c = counts && counts[box.dataset.node];
    let tag = box.querySelector(".live");
    if (!tag) { tag = el("span", { class: "live muted" }); box.querySelector("summary").append(tag); }
    tag.textContent = c ? ` — ${t("console.live_counts", { now: c.now, reached: c.reached_today, left: c.left_today })}` : "";
  }
}

async function liveTable() {
  const counts = await liveCounts();
  if (!counts) return;
  $("live").replaceChildren(...Object.entries(counts).map(([node, c]) =>
    el("tr", { "data-node-live": node }, el("td", { text: node }), el("td", { text: c.now }),
      el("td", { text: c.reached_today }), el("td", { text: c.left_today }))));
}

// ---- simulate a call -----------------------------------------------------------------------
function initSimulate(page) {
  flow.name = page.dataset.flow;
  showDiagram($("sim-diagram"), "active");
  liveTable();
  setInterval(liveTable, 5000);
  $("simulate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(t("console.simulate"), async () => {
      const number = $("sim-number").value.trim();
      const client = $("sim-client").value;
      const at = $("sim-at").value;
      const body = {
        caller: client ? { client_id: Number(client) } : number ? { number } : null,
        at: at ? new Date(at).toISOString() : null,
        keys: $("sim-keys").value,
      };
      if ($("sim-draft") && $("sim-draft").checked) body.draft = true;
      const result = await api("POST", flowApi("/simulate"), body);
      const end = result.end;
      $("sim-end").textContent = end.kind === "queued"
        ? t(end.queue_open ? "console.queued_open" : "console.queued_closed", { queue: end.queue })
        : label("sim_end", end.kind) + (end.queue ? ` (${end.queue})` : "");
      $("sim-prompts").replaceChildren(...result.prompts.map((p) => el("li", { text: `${p.prompt}: ${p.text || p.media || ""}` })));
      $("sim-path").textContent = result.path.join(" → ");
      say(t(result.version == null ? "console.simulated_draft" : "console.simulated", { version: result.version }));
    });
  });
}

// ---- a queue's or an agent's changes, each undone in one step (usecases/roster.py) ----------
function rosterHistory(kind, id, reload) {
  const base = `/desk/api/admin/${kind}s/${encodeURIComponent(id)}`;
  const rows = el("tbody", {});
  const box = el("details", { class: "history", "data-history": id },
    el("summary", { text: t("console.changes") }),
    el("table", {}, el("thead", {}, el("tr", {}, ...[t("console.when"), t("console.who"), t("console.what_changed"), t("console.undo")].map((text) => el("th", { text })))), rows));
  const load = async () => {
    const { changes } = await api("GET", `${base}/history`);
    rows.replaceChildren(...changes.map((c) => {
      const before = (c.detail && c.detail.before) || {}, after = (c.detail && c.detail.after) || {};
      const what = c.action === "queue.members"
        ? [`${t("console.members")}: ${unpair(before)} → ${unpair(after)}`]
        : Object.keys(after).map((k) => `${label("field", k)}: ${shown(before[k])} → ${shown(after[k])}`);
      const undo = c.undoable ? el("button", { type: "button", text: t("console.undo"), onclick: () => attempt(t("console.undo"), async () => {
        await api("POST", `${base}/undo/${c.id}`);
        say(t("console.undone", { id }));
        await reload();
      }) }) : "";
      return el("tr", { "data-change": c.id }, el("td", { text: fmtDateTime(c.at) }), el("td", { text: c.actor }),
        el("td", {}, el("ul", {}, ...what.map((w) => el("li", { text: w })))), el("td", {}, undo));
    }));
  };
  box.addEventListener("toggle", () => { if (box.open) attempt(t("console.changes"), load); });
  return box;
}

// ---- agents --------------------------------------------------------------------------------
function pairs(text) {
  const out = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, value] = part.split(":").map((x) => x.trim());
    out[key] = value === undefined || value === "" ? 0 : Number(value);
  }
  return out;
}
function unpair(map) { return Object.entries(map).map(([k, v]) => `${k}:${v}`).join(", "); }

function agentForm(agent, mayGiveRoles) {
  const f = (text, input) => { const id = `f${++fieldCount}`; input.id = id; return [el("label", { for: id, text }), input]; };
  const name = el("input", { value: agent.name });
  const endpoint = el("input", { value: agent.endpoint || "" });
  const email = el("input", { type: "email", value: agent.email || "" });
  const skills = el("input", { value: agent.skills.join(", ") });
  const queues = el("input", { value: unpair(agent.queues), class: "agent-queues" });
  const active = el("input", { type: "checkbox" }); active.checked = agent.active;
  const role = el("select", { disabled: !mayGiveRoles },
    ...["agent", "manager", "supervisor", "admin"].map((r) => el("option", { value: r, text: label("role", r), selected: r === agent.role })));
  const password = el("input", { type: "password", autocomplete: "new-password" });
  const save = async () => attempt(t("console.agent", { id: agent.id }), async () => {
    const body = {
      name: name.value, endpoint: endpoint.value, email: email.value.trim(), active: active.checked,
      skills: skills.value.split(",").map((s) => s.trim()).filter(Boolean), queues: pairs(queues.value),
    };
    if (mayGiveRoles && role.value !== agent.role) body.role = role.value;
    const saved = await api("PATCH", `/desk/api/admin/agents/${encodeURIComponent(agent.id)}`, body);
    say(t("console.agent_saved", { id: saved.id }));
  });
  const setPassword = async () => attempt(t("console.password_of", { id: agent.id }), async () => {
    await api("POST", `/desk/api/admin/agents/${encodeURIComponent(agent.id)}/password`, { password: password.value });
    password.value = "";
    say(t("console.password_set", { id: agent.id }));
  });
  return el("details", { class: "node", "data-agent": agent.id },
    el("summary", { text: `${agent.name} (${agent.id}) · ${label("role", agent.role)}${agent.active ? "" : ` · ${t("console.inactive")}`}` }),
    ...f(t("console.name"), name), ...f(t("console.phone"), endpoint), ...f(t("console.email"), email),
    ...f(t("console.skills"), skills),
    ...f(t("console.queues_penalties"), queues), ...f(t("console.role"), role),
    el("label", { class: "chip" }, active, ` ${t("console.active")}`),
    el("button", { type: "button", text: t("console.save"), onclick: save }),
    ...f(t("console.new_password"), password), el("button", { type: "button", text: t("console.set_password"), onclick: setPassword }),
    rosterHistory("agent", agent.id, () => loadAgents(mayGiveRoles)));
}

async function loadAgents(mayGiveRoles) {
  const { agents } = await api("GET", "/desk/api/admin/agents");
  $("agents").replaceChildren(...agents.map((a) => agentForm(a, mayGiveRoles)));
}

function initAgents(page) {
  const mayGiveRoles = page.dataset.roles === "yes";
  $("new-agent").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(t("console.new_agent"), async () => {
      const body = { id: $("new-id").value.trim(), name: $("new-name").value.trim(), queues: pairs($("new-queues").value) };
      if ($("new-endpoint").value.trim()) body.endpoint = $("new-endpoint").value.trim();
      if ($("new-email").value.trim()) body.email = $("new-email").value.trim();
      if ($("new-password").value) body.password = $("new-password").value;
      const made = await api("POST", "/desk/api/admin/agents", body);
      say(t("console.agent_created", { id: made.id }));
      event.target.reset();
      await loadAgents(mayGiveRoles);
    });
  });
  loadAgents(mayGiveRoles).catch(loadingFailed);
}

// ---- queues --------------------------------------------------------------------------------
async function loadQueues() {
  const { queues } = await api("GET", "/desk/api/admin/queues");
  $("queues").replaceChildren(...queues.map((queue) => {
    const { id, members, ...settings } = queue;
    const fields = fieldsFor(settings, { readOnly: [] });
    const membersInput = el("input", { value: unpair(members), id: `members-${id}` });
    return el("details", { class: "node", "data-queue": id },
      el("summary", { text: `${settings.name} (${id})` }), fields,
      el("button", { type: "button", text: t("console.save_settings"), onclick: () => attempt(t("console.queue", { id }), async () => {
        await api("PATCH", `/desk/api/admin/queues/${encodeURIComponent(id)}`, readFields(fields, settings));
        say(t("console.queue_saved", { id }));
      }) }),
      el("label", { for: `members-${id}`, text: t("console.members_hint") }), membersInput,
      el("button", { type: "button", text: t("console.save_agents"), onclick: () => attempt(t("console.queue", { id }), async () => {
        await api("PUT", `/desk/api/admin/queues/${encodeURIComponent(id)}/members`, { members: pairs(membersInput.value) });
        say(t("console.members_saved", { id }));
      }) }),
      rosterHistory("queue", id, loadQueues));
  }));
}

// ---- hours ---------------------------------------------------------------------------------
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

async function loadHours(name) {
  const hours = await api("GET", `/desk/api/flows/${encodeURIComponent(name)}/calendars`);
  $("calendars").replaceChildren(...Object.entries(hours.calendars).map(([calendar, c]) => {
    const inputs = {};
    const id = (suffix) => `cal-${calendar}-${suffix}`;
    const rows = [el("label", { for: id("timezone"), text: t("console.timezone") }), inputs.timezone = el("input", { id: id("timezone"), value: c.timezone })];
    for (const day of DAYS) {
      rows.push(el("label", { for: id(day), text: label("weekday", day) }), inputs[day] = el("input", { id: id(day), value: (c.weekly[day] || []).join(", "), placeholder: "08:00-16:00" }));
    }
    const holidays = el("textarea", { id: id("holidays"), rows: 3 }); holidays.value = c.holidays.join("\n");
    const at = el("input", { id: id("at"), type: "datetime-local" });
    const users = Object.entries(hours.used_by).filter(([, cal]) => cal === calendar).map(([q]) => q);
    return el("details", { class: "node", "data-calendar": calendar, open: true },
      el("summary", { text: users.length ? t("console.calendar_queues", { calendar, queues: users.join(", ") }) : calendar }),
      ...rows, el("label", { for: id("holidays"), text: t("console.closed_on") }), holidays,
      el("label", { for: id("at"), text: t("console.from_empty") }), at,
      el("button", { type: "button", text: t("console.save_hours"), onclick: () => attempt(t("console.hours_of", { calendar }), async () => {
        const weekly = {};
        for (const day of DAYS) {
          const ranges = inputs[day].value.split(",").map((r) => r.trim()).filter(Boolean);
          if (ranges.length) weekly[day] = ranges;
        }
        const done = await api("PUT", `/desk/api/flows/${encodeURIComponent(name)}/calendars/${encodeURIComponent(calendar)}`, {
          calendar: { timezone: inputs.timezone.value, weekly, holidays: holidays.value.split("\n").map((d) => d.trim()).filter(Boolean) },
          active_version: hours.version, at: at.value ? new Date(at.value).toISOString() : null,
        });
        say(done.scheduled_for
          ? t("console.hours_from", { when: fmtDateTime(done.scheduled_for) })
          : t("console.hours_now", { version: done.version }));
        await loadHours(name);
      }) }));
  }));
}

// ---- the audit trail -----------------------------------------------------------------------
let oldest = null;
async function loadAudit(more = false) {
  const query = new URLSearchParams({ limit: "50" });
  if ($("audit-subject").value.trim()) query.set("subject", $("audit-subject").value.trim());
  if (more && oldest) query.set("before", oldest);
  const { entries } = await api("GET", `/desk/api/admin/audit?${query}`);
  if (!more) $("audit").replaceChildren();
  for (const e of entries) {
    $("audit").append(el("tr", {}, el("td", { text: fmtDateTime(e.at) }), el("td", { text: e.actor }),
      el("td", { text: e.action }), el("td", { text: e.subject }), el("td", {}, el("code", { text: JSON.stringify(e.detail) }))));
    oldest = e.id;
  }
}

// ---- API tokens: own, or everyone's for an admin -------------------------------------------
async function loadTokens() {
  const { tokens } = await api("GET", "/desk/api/tokens");
  $("tokens").replaceChildren(...tokens.map((k) => el("tr", { "data-token": k.id },
    el("td", { text: `${k.name} (${k.prefix})` }), el("td", { text: k.agent_id }),
    el("td", { text: t(k.state === "active" ? "console.token_active" : k.state === "expired" ? "console.token_expired" : "console.token_revoked_state") }),
    el("td", { text: k.expires_at ? fmtDateTime(k.expires_at) : t("console.never") }),
    el("td", { text: k.last_used_at ? fmtDateTime(k.last_used_at) : t("console.never") }),
    el("td", { text: k.last_used_from || "" }),
    el("td", {}, k.state === "active" ? el("button", { type: "button", text: t("console.revoke"), onclick: () => attempt(t("console.revoke"), async () => {
      await api("DELETE", `/desk/api/tokens/${k.id}`);
      say(t("console.token_revoked", { name: k.name }));
      await loadTokens();
    }) }) : ""))));
}

function initTokens() {
  $("new-token").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(t("console.token_create"), async () => {
      const days = $("token-days").value;
      const made = await api("POST", "/desk/api/tokens", {
        name: $("token-name").value.trim(), expires_days: days ? Number(days) : null,
      });
      $("token-secret").textContent = t("console.token_made", { name: made.name, token: made.token });
      event.target.reset();
      await loadTokens();
    });
  });
  loadTokens().catch(loadingFailed);
}

// ---- changes between two versions or revisions, one line each (path: before → after) ---------
function shown(value) { return typeof value === "string" ? value : JSON.stringify(value); }

function changeText(change) {
  if (change.kind === "added") return `+ ${change.path}: ${shown(change.after)}`;
  if (change.kind === "removed") return `− ${change.path}: ${shown(change.before)}`;
  return `${change.path}: ${shown(change.before)} → ${shown(change.after)}`;
}

// A refused change's problems (422): at the top of the answer or in its details.
function problemsOf(error) {
  const data = (error && error.data) || {};
  return data.problems || (data.details && data.details.problems) || null;
}

// ---- surveys: the list, and the editor (the flow editor's draft, check, publish with a note,
// versions, diff and roll back, over a survey's questions and prompts) ------------------------
const survey = { name: "", base: null, live: null, definition: null };
// A new question's fields by type (core/surveys/model.py); the validator says what is missing.
const QUESTION_TYPES = {
  nps: {},
  scale: { min: 1, max: 5 },
  yes_no: { yes_key: "1", no_key: "2" },
  choice: { options: { 1: "first", 2: "second" } },
  recording: { max_seconds: 60, silence_seconds: 4 },
};
const SURVEY_TOP = ["description", "default_language", "languages", "intro", "consent", "start", "thanks", "invalid_prompt"];

function surveyApi(path = "") { return `/desk/api/surveys/${encodeURIComponent(survey.name)}${path}`; }

async function loadSurveyList() {
  const { surveys } = await api("GET", "/desk/api/surveys");
  $("surveys").replaceChildren(...surveys.map((s) => el("tr", { "data-survey": s.name },
    el("td", {}, el("a", { href: `/admin/surveys/${encodeURIComponent(s.name)}`, text: s.name })),
    el("td", { text: s.version }), el("td", { text: s.description || "" }),
    el("td", { text: fmtDateTime(s.published_at) }), el("td", { text: s.published_by || "" }))));
}

function initSurveys() {
  $("new-survey").addEventListener("submit", (event) => {
    event.preventDefault();
    location.href = `/admin/surveys/${encodeURIComponent($("new-survey-name").value.trim())}`;
  });
  loadSurveyList().catch(loadingFailed);
}

function removeFromSurvey(part, name) {
  attempt(t("console.remove"), async () => {
    const definition = collectSurvey();
    delete definition[part][name];
    survey.definition = definition;
    renderSurvey(definition);
  });
}

function renderSurvey(definition) {
  const top = Object.fromEntries(SURVEY_TOP.map((key) => [key, definition[key] ?? null]));
  $("survey-top").replaceChildren(fieldsFor(top, { readOnly: [] }));
  $("questions").replaceChildren(...Object.entries(definition.questions || {}).map(([name, question]) =>
    el("details", { class: "node", id: `node-${name}`, "data-node": name },
      el("summary", { text: `${name} · ${question.type}` }),
      el("ul", { class: "node-problems" }),
      fieldsFor(question),
      el("button", { type: "button", text: t("console.remove_question"), onclick: () => removeFromSurvey("questions", name) }))));
  $("prompts").replaceChildren(...Object.entries(definition.prompts || {}).map(([name, prompt]) =>
    el("details", { class: "node prompt", id: `prompt-${name}`, "data-prompt": name },
      el("summary", { text: name }), fieldsFor(prompt),
      el("button", { type: "button", text: t("console.remove_prompt"), onclick: () => removeFromSurvey("prompts", name) }))));
}

function collectSurvey() {
  const definition = structuredClone(survey.definition);
  Object.assign(definition, readFields($("survey-top").querySelector(".fields"), {}));
  if (definition.invalid_prompt === "") definition.invalid_prompt = null;  // none: no such prompt
  definition.questions = {};
  for (const box of $("questions").querySelectorAll("[data-node]")) {
    const name = box.dataset.node;
    definition.questions[name] = readFields(box.querySelector(".fields"), survey.definition.questions[name]);
  }
  definition.prompts = {};
  for (const box of $("prompts").querySelectorAll("[data-prompt]")) {
    const name = box.dataset.prompt;
    definition.prompts[name] = readFields(box.querySelector(".fields"), survey.definition.prompts[name]);
  }
  return definition;
}

async function loadSurvey() {
  const draft = await api("GET", surveyApi("/draft"));
  survey.definition = draft.definition;
  survey.base = draft.base_version;
  const state = { version: draft.base_version, when: fmtDateTime(draft.updated_at) };
  $("draft-state").textContent = draft.base_version == null
    ? t(draft.saved ? "console.survey_new_draft" : "console.survey_new", state)
    : t(draft.saved ? "console.draft_state" : "console.no_draft", state);
  renderSurvey(draft.definition);
  showProblems(draft.problems, t("console.whole_survey"));
  await loadSurveyVersions();
}

async function loadSurveyVersions() {
  // A new survey has no versions yet (the API does not know its name until it is published).
  const { versions } = survey.base == null ? { versions: [] } : await api("GET", surveyApi("/versions"));
  survey.live = (versions.find((v) => v.active) || {}).version;
  $("versions").replaceChildren(...versions.map((v) => el("tr", { "data-version": v.version },
    el("td", { text: v.version }), el("td", { text: v.active ? t("console.live") : "" }),
    el("td", { text: fmtDateTime(v.published_at) }), el("td", { text: v.published_by || "" }),
    el("td", { text: v.note || "" }),
    el("td", {}, ...(v.active ? [] : [
      el("button", { type: "button", text: t("console.compare"), onclick: () => attempt(t("console.compare"), () => showSurveyDiff(v.version, "active")) }),
      el("button", { type: "button", text: t("console.rollback"), onclick: () => rollbackSurvey(v.version) }),
    ])))));
}

async function showSurveyDiff(from, to) {
  const diff = await api("GET", surveyApi(`/diff?from=${from}&to=${to}`));
  const changes = $("diff-changes");
  changes.hidden = false;
  changes.replaceChildren(...(diff.changes.length
    ? diff.changes.map((c) => el("li", { class: c.kind, text: changeText(c) }))
    : [el("li", { text: t("console.no_differences") })]));
  const pre = $("diff");
  const text = diff.unified ?? diff.text ?? "";  // the YAML diff
  pre.hidden = !text;
  pre.replaceChildren(...text.split("\n").map((line) => el("span", {
    class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "", text: `${line}\n`,
  })));
}

async function rollbackSurvey(version) {
  await attempt(t("console.rolling_back"), async () => {
    // active_version: refused (409) when someone published another since this list was read.
    const done = await api("POST", surveyApi("/rollback"), { to: version, active_version: survey.live, note: $("note").value });
    say(t("console.rolled_back", { version, new_version: done.version }));
    $("note").value = "";
    await loadSurvey();
  });
}

async function saveSurveyDraft() {
  const saved = await api("PUT", surveyApi("/draft"), { definition: collectSurvey() });
  survey.definition = saved.definition;
  return saved;
}

function addToSurvey(event, what) {
  event.preventDefault();
  attempt(t(what === "question" ? "console.add_question" : "console.add_prompt"), async () => {
    const definition = collectSurvey();
    const name = $(`new-${what}-name`).value.trim();
    const part = what === "question" ? definition.questions : definition.prompts;
    if (Object.hasOwn(part, name)) throw new Error(t("console.name_taken", { name }));
    if (what === "question") {
      const type = $("new-question-type").value;
      part[name] = { type, prompt: name, ...structuredClone(QUESTION_TYPES[type]), next: "end" };
    }
    if (!Object.hasOwn(definition.prompts, name)) {
      definition.prompts[name] = { text: Object.fromEntries((definition.languages || []).map((lang) => [lang, ""])), media: {} };
    }
    survey.definition = definition;
    renderSurvey(definition);
    document.getElementById(what === "question" ? `node-${name}` : `prompt-${name}`).open = true;
    event.target.reset();
  });
}

function initSurvey(page) {
  survey.name = page.dataset.survey;
  $("new-question-type").append(...Object.keys(QUESTION_TYPES).map((type) => el("option", { value: type, text: type })));
  $("new-question").addEventListener("submit", (event) => addToSurvey(event, "question"));
  $("new-prompt").addEventListener("submit", (event) => addToSurvey(event, "prompt"));
  $("check").addEventListener("click", () => attempt(t("console.check"), async () => {
    const { problems } = await api("POST", surveyApi("/draft/check"), { definition: collectSurvey() });
    showProblems(problems, t("console.whole_survey"));
    say(t(problems.length ? "console.survey_problems" : "console.survey_ok"), problems.length > 0);
  }));
  $("save").addEventListener("click", () => attempt(t("console.save"), async () => {
    const saved = await saveSurveyDraft();
    say(t(saved.problems.length ? "console.draft_saved_problems" : "console.draft_saved"), saved.problems.length > 0);
    await loadSurvey();
  }));
  $("discard").addEventListener("click", () => attempt(t("console.discard"), async () => {
    await api("DELETE", surveyApi("/draft"));
    say(t("console.draft_discarded"));
    await loadSurvey();
  }));
  $("publish").addEventListener("click", () => attempt(t("console.publish"), async () => {
    const saved = await saveSurveyDraft();
    if (saved.problems.length) {
      showProblems(saved.problems, t("console.whole_survey"));
      throw new Error(t("console.survey_problems"));
    }
    let done;
    try {
      done = await api("POST", surveyApi("/publish"), { note: $("note").value });
    } catch (error) {
      if (problemsOf(error)) showProblems(problemsOf(error), t("console.whole_survey"));
      throw error;  // published_since: the message says who published what since
    }
    $("note").value = "";
    await loadSurvey();
    say(t(done.changed === false ? "console.unchanged" : "console.published", { version: done.version }));
  }));
  loadSurvey().catch(loadingFailed);
}

// ---- campaigns: the list with start/pause/stop, each one's settings (a new revision with a
// note; the keys fixed at creation read-only), their problems at their fields, the history ---
const campaigns = { edit: false, shown: null, revision: null, settings: null };
const CAMPAIGN_MOVES = { draft: ["start", "stop"], running: ["pause", "stop"], paused: ["start", "stop"] };
const CLOSED = ["stopped", "finished"];  // their settings can no longer change

async function loadCampaigns() {
  const { campaigns: list } = await api("GET", "/desk/api/campaigns");
  $("campaigns").replaceChildren(...list.map((c) => el("tr", { "data-campaign": c.id },
    el("td", {}, el("a", { href: `#campaign-${c.id}`, text: c.name, onclick: () => openCampaign(c.id).catch(loadingFailed) })),
    el("td", { text: label("campaign_kind", c.kind) }),
    el("td", { text: label("campaign_status", c.status) }),
    el("td", {}, ...(campaigns.edit ? CAMPAIGN_MOVES[c.status] || [] : []).map((op) => el("button", {
      type: "button", onclick: () => moveCampaign(c, op),
      text: t(op === "start" ? "console.campaign_start" : op === "pause" ? "console.campaign_pause" : "console.campaign_stop"),
    }))))));
}

async function moveCampaign(campaign, op) {
  await attempt(t("console.campaign", { name: campaign.name }), async () => {
    const done = await api("POST", `/desk/api/campaigns/${encodeURIComponent(campaign.id)}/${op}`);
    say(t("console.campaign_now", { name: done.name, status: label("campaign_status", done.status) }));
    await loadCampaigns();
    if (String(campaigns.shown) === String(campaign.id)) await openCampaign(campaign.id);
  });
}

async function openCampaign(id) {
  const data = await api("GET", `/desk/api/campaigns/${encodeURIComponent(id)}/settings`);
  Object.assign(campaigns, { shown: id, revision: data.revision, settings: data.settings });
  const closed = data.editable === undefined ? CLOSED.includes(data.status) : !data.editable;
  const editable = campaigns.edit && !closed;
  $("campaign").hidden = false;
  $("campaign-title").textContent = t("console.campaign_settings", { name: data.name });
  $("campaign-state").textContent = t(closed ? "console.campaign_revision_closed" : "console.campaign_revision",
    { revision: data.revision, status: label("campaign_status", data.status), kind: label("campaign_kind", data.kind) });
  const fixed = data.fixed || [];
  const fields = fieldsFor(data.settings, { readOnly: editable ? fixed : Object.keys(data.settings), optional: data.optional || [] });
  for (const key of fixed) {
    const input = fields.querySelector(`[data-key="${CSS.escape(key)}"]`);
    const name = input && fields.querySelector(`label[for="${input.id}"]`);
    if (name) name.append(el("span", { class: "muted", text: ` (${t("console.fixed")})` }));
  }
  $("settings").replaceChildren(fields);
  $("settings-save").hidden = !editable;
  await loadSettingsHistory(id);
}

// Each problem at its field (the first part of its path), the rest in the status line.
function showFieldProblems(problems) {
  for (const old of $("settings").querySelectorAll(".field-problem")) old.remove();
  for (const input of $("settings").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const p of problems || []) {
    const key = String(p.at || "").split(".")[0];
    const input = key && $("settings").querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!input) continue;
    input.setAttribute("aria-invalid", "true");
    const text = p.at === key ? p.message : `${p.at}: ${p.message}`;
    input.closest(".fields > *").after(el("p", { class: "problem field-problem", "data-for": key, role: "alert", text }));
  }
}

async function loadSettingsHistory(id) {
  const { changes } = await api("GET", `/desk/api/campaigns/${encodeURIComponent(id)}/settings/history`);
  $("settings-history").replaceChildren(...(changes.length ? changes.map((c) => el("tr", { "data-revision": c.revision },
    el("td", { text: c.revision }), el("td", { text: fmtDateTime(c.at) }), el("td", { text: c.by || "" }),
    el("td", { text: c.note || "" }),
    el("td", {}, el("ul", { class: "changes" }, ...c.changes.map((x) => el("li", { class: x.kind, text: changeText(x) }))))))
    : [el("tr", {}, el("td", { colspan: 5, class: "muted", text: t("console.no_settings_changes") }))]));
}

function initCampaigns(page) {
  campaigns.edit = page.dataset.edit === "yes";
  $("save-settings").addEventListener("click", () => attempt(t("console.save_settings"), async () => {
    showFieldProblems([]);
    const settings = readFields($("settings").querySelector(".fields"), campaigns.settings);
    let saved;
    try {
      saved = await api("PUT", `/desk/api/campaigns/${encodeURIComponent(campaigns.shown)}/settings`, {
        settings, revision: campaigns.revision, note: $("settings-note").value,
      });
    } catch (error) {
      showFieldProblems(problemsOf(error));  // changed_since: the message says so; reload to see
      throw error;
    }
    $("settings-note").value = "";
    await openCampaign(campaigns.shown);
    say(t(saved.changed === false ? "console.settings_unchanged" : "console.settings_saved", { name: saved.name, revision: saved.revision }));
  }));
  loadCampaigns()
    .then(() => {
      const wanted = /^#campaign-(.+)$/.exec(location.hash);
      return wanted ? openCampaign(decodeURIComponent(wanted[1])) : undefined;
    })
    .catch(loadingFailed);
}

// ---- start ---------------------------------------------------------------------------------
function loadingFailed(error) { say(t("console.failed", { what: t("console.loading"), message: error.message }), true); }

const page = document.querySelector("[data-page]");
const start = {
  flow: initFlow,
  simulate: initSimulate,
  agents: initAgents,
  queues: () => loadQueues().catch(loadingFailed),
  hours: (p) => loadHours(p.dataset.flow).catch(loadingFailed),
  audit: () => {
    $("audit-subject").addEventListener("change", () => loadAudit());
    $("audit-more").addEventListener("click", () => loadAudit(true));
    loadAudit().catch(loadingFailed);
  },
  tokens: initTokens,
  surveys: initSurveys,
  survey: initSurvey,
  campaigns: initCampaigns,
  home: () => {},
}[page && page.dataset.page];
if (start) start(page);
