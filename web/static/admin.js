"use strict";
// The admin console (web/admin_pages.py): each page fills itself from the /desk/api routes
// that machines call under /api, so every change passes the same checks and lands on the
// audit trail. Nothing here decides anything: it shows what the server answers.
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
    const error = new Error(json ? data.message : response.statusText);
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
    say(`${what}: ${error.message}`, true);
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

function kvRow(key, value) {
  return el("div", { class: "kv-row" },
    el("input", { class: "kv-key", value: key, "aria-label": "key" }),
    el("input", { class: "kv-value", value, "aria-label": `${key}: value` }),
    el("button", { type: "button", text: "−", title: "remove", onclick: (e) => e.target.parentElement.remove() }));
}

function fieldsFor(object, { readOnly = ["type"] } = {}) {
  const box = el("div", { class: "fields" });
  for (const [key, value] of Object.entries(object)) {
    const id = `f${++fieldCount}`;
    box.append(el("label", { for: id, text: key }));
    let input;
    if (typeof value === "boolean") {
      input = el("input", { id, type: "checkbox", "data-key": key, "data-kind": "bool" });
      input.checked = value;
    } else if (typeof value === "number") {
      input = el("input", { id, type: "number", value: String(value), "data-key": key, "data-kind": "number" });
    } else if (typeof value === "string") {
      input = el("input", { id, value, "data-key": key, "data-kind": "text", readonly: readOnly.includes(key) });
    } else if (isTextMap(value)) {
      const rows = el("div", { class: "kv", id, "data-key": key, "data-kind": "map" });
      for (const [k, v] of Object.entries(value)) rows.append(kvRow(k, v));
      input = el("div", {}, rows,
        el("button", { type: "button", text: "+ row", onclick: () => rows.append(kvRow("", "")) }));
    } else {
      input = el("textarea", { id, rows: 2, "data-key": key, "data-kind": "json" });
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
    else if (kind === "text") out[key] = input.value;
    else if (kind === "map") {
      out[key] = {};
      for (const row of input.querySelectorAll(".kv-row")) {
        const k = row.querySelector(".kv-key").value.trim();
        if (k) out[key][k] = row.querySelector(".kv-value").value;
      }
    } else {
      try { out[key] = JSON.parse(input.value); } catch { throw new Error(`${key}: not valid JSON`); }
    }
  }
  return out;
}

// ---- the flow editor ---------------------------------------------------------------------
const flow = { name: "", base: null, definition: null, live: null };

function flowApi(path = "") { return `/desk/api/flows/${encodeURIComponent(flow.name)}${path}`; }

function showProblems(problems) {
  const box = $("problems");
  box.replaceChildren();
  for (const node of document.querySelectorAll("[data-node]")) {
    node.classList.remove("bad");
    node.querySelector(".node-problems").replaceChildren();
  }
  if (!problems.length) { box.append(el("p", { class: "msg", text: "No problems." })); return; }
  const list = el("ul", { class: "problems" });
  for (const p of problems) {
    const where = p.node ? el("a", { href: `#node-${p.node}`, text: p.at }) : el("span", { text: p.at || "flow" });
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
      el("summary", { text: name }), fieldsFor(prompt)));
  }
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
  $("draft-state").textContent = draft.saved
    ? `Your draft, taken from version ${draft.base_version}, saved ${new Date(draft.updated_at).toLocaleString()}` +
      (draft.trial_version ? `; test numbers hear it as version ${draft.trial_version}.` : ".")
    : `No draft yet: the forms show version ${draft.base_version}, the live one.`;
  $("test-numbers").value = draft.test_numbers.join(", ");
  renderFlow(draft.definition);
  showProblems(draft.problems);
  await showDiagram($("diagram"), draft.saved ? "draft" : "active");
  await loadVersions();
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
        el("button", { type: "button", text: "Compare with live", onclick: () => showDiff(v.version, "active") }),
        el("button", { type: "button", text: "Roll back to this", onclick: () => rollback(v.version) }));
    }
    if (v.status === "scheduled") {
      actions.append(el("button", { type: "button", text: "Cancel", onclick: () => cancelScheduled(v.version) }));
    }
    body.append(el("tr", { "data-version": v.version },
      el("td", { text: v.version }), el("td", { text: v.active ? "live" : v.status }),
      el("td", { text: new Date(v.published_at).toLocaleString() }),
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
  if (!diff.text) pre.textContent = "No differences.";
}

async function rollback(version) {
  await attempt("Roll back", async () => {
    const done = await api("POST", flowApi("/rollback"), { to: version, active_version: flow.live });
    say(`Version ${version} is live again, as version ${done.version}.`);
    await loadVersions();
  });
}

async function cancelScheduled(version) {
  await attempt("Cancel", async () => {
    await api("DELETE", flowApi(`/versions/${version}/schedule`));
    say(`Version ${version} will not be published.`);
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
  $("check").addEventListener("click", () => attempt("Check", async () => {
    const checked = await api("POST", flowApi("/draft/check"), { definition: collectFlow() });
    showProblems(checked.problems);
    say(checked.ok ? "The flow has no problems." : "The flow has problems: see each node.", !checked.ok);
  }));
  $("save").addEventListener("click", () => attempt("Save", async () => {
    const saved = await saveDraft();
    say(saved.trial_version
      ? `Draft saved: calls from ${saved.test_numbers.join(", ")} run it now.`
      : "Draft saved." + (saved.test_numbers.length ? " Its test numbers hear the live version until it has no problems." : ""));
    await loadFlow();
  }));
  $("discard").addEventListener("click", () => attempt("Discard", async () => {
    await api("DELETE", flowApi("/draft"));
    say("Draft discarded.");
    await loadFlow();
  }));
  $("publish").addEventListener("click", () => attempt("Publish", async () => {
    await saveDraft();
    const at = $("publish-at").value;
    const done = await api("POST", flowApi("/publish"), {
      note: $("note").value || null, at: at ? new Date(at).toISOString() : null,
    });
    say(done.scheduled_for
      ? `Version ${done.version} will be published at ${new Date(done.scheduled_for).toLocaleString()}.`
      : done.changed ? `Version ${done.version} is live.` : "Nothing changed: the draft equals the live version.");
    await loadFlow();
  }));
  loadFlow().catch((error) => say(`Loading: ${error.message}`, true));
}

// ---- simulate a call -----------------------------------------------------------------------
function initSimulate(page) {
  flow.name = page.dataset.flow;
  showDiagram($("sim-diagram"), "active");
  $("simulate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt("Simulate", async () => {
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
        ? `Queued in ${end.queue} (${end.queue_open ? "open" : "closed"})`
        : end.kind.replaceAll("_", " ") + (end.queue ? ` (${end.queue})` : "");
      $("sim-prompts").replaceChildren(...result.prompts.map((p) => el("li", { text: `${p.prompt}: ${p.text || p.media || ""}` })));
      $("sim-path").textContent = result.path.join(" → ");
      say(`Simulated on version ${result.version ?? "draft"}.`);
    });
  });
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
  const f = (label, input) => { const id = `f${++fieldCount}`; input.id = id; return [el("label", { for: id, text: label }), input]; };
  const name = el("input", { value: agent.name });
  const endpoint = el("input", { value: agent.endpoint || "" });
  const skills = el("input", { value: agent.skills.join(", ") });
  const queues = el("input", { value: unpair(agent.queues), class: "agent-queues" });
  const active = el("input", { type: "checkbox" }); active.checked = agent.active;
  const role = el("select", { disabled: !mayGiveRoles },
    ...["agent", "manager", "supervisor", "admin"].map((r) => el("option", { value: r, text: r, selected: r === agent.role })));
  const password = el("input", { type: "password", autocomplete: "new-password" });
  const save = async () => attempt(`Agent ${agent.id}`, async () => {
    const body = {
      name: name.value, endpoint: endpoint.value, active: active.checked,
      skills: skills.value.split(",").map((s) => s.trim()).filter(Boolean), queues: pairs(queues.value),
    };
    if (mayGiveRoles && role.value !== agent.role) body.role = role.value;
    const saved = await api("PATCH", `/desk/api/admin/agents/${encodeURIComponent(agent.id)}`, body);
    say(`Agent ${saved.id} saved: the next call follows it.`);
  });
  const setPassword = async () => attempt(`Password of ${agent.id}`, async () => {
    await api("POST", `/desk/api/admin/agents/${encodeURIComponent(agent.id)}/password`, { password: password.value });
    password.value = "";
    say(`New password set for ${agent.id}: their log-ins ended.`);
  });
  return el("details", { class: "node", "data-agent": agent.id },
    el("summary", { text: `${agent.name} (${agent.id}) · ${agent.role}${agent.active ? "" : " · inactive"}` }),
    ...f("Name", name), ...f("Phone", endpoint), ...f("Skills", skills),
    ...f("Queues with penalties", queues), ...f("Role", role),
    el("label", { class: "chip" }, active, " active"),
    el("button", { type: "button", text: "Save", onclick: save }),
    ...f("New password", password), el("button", { type: "button", text: "Set password", onclick: setPassword }));
}

async function loadAgents(mayGiveRoles) {
  const { agents } = await api("GET", "/desk/api/admin/agents");
  $("agents").replaceChildren(...agents.map((a) => agentForm(a, mayGiveRoles)));
}

function initAgents(page) {
  const mayGiveRoles = page.dataset.roles === "yes";
  $("new-agent").addEventListener("submit", (event) => {
    event.preventDefault();
    attempt("New agent", async () => {
      const body = { id: $("new-id").value.trim(), name: $("new-name").value.trim(), queues: pairs($("new-queues").value) };
      if ($("new-endpoint").value.trim()) body.endpoint = $("new-endpoint").value.trim();
      if ($("new-password").value) body.password = $("new-password").value;
      const made = await api("POST", "/desk/api/admin/agents", body);
      say(`Agent ${made.id} created.`);
      event.target.reset();
      await loadAgents(mayGiveRoles);
    });
  });
  loadAgents(mayGiveRoles).catch((error) => say(`Loading: ${error.message}`, true));
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
      el("button", { type: "button", text: "Save settings", onclick: () => attempt(`Queue ${id}`, async () => {
        await api("PATCH", `/desk/api/admin/queues/${encodeURIComponent(id)}`, readFields(fields, settings));
        say(`Queue ${id} saved: the next caller gets it.`);
      }) }),
      el("label", { for: `members-${id}`, text: "Agents with penalties (agent:penalty, ...)" }), membersInput,
      el("button", { type: "button", text: "Save agents", onclick: () => attempt(`Queue ${id}`, async () => {
        await api("PUT", `/desk/api/admin/queues/${encodeURIComponent(id)}/members`, { members: pairs(membersInput.value) });
        say(`Agents of ${id} saved: the next caller is offered to them.`);
      }) }));
  }));
}

// ---- hours ---------------------------------------------------------------------------------
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

async function loadHours(name) {
  const hours = await api("GET", `/desk/api/flows/${encodeURIComponent(name)}/calendars`);
  $("calendars").replaceChildren(...Object.entries(hours.calendars).map(([calendar, c]) => {
    const inputs = {};
    const id = (suffix) => `cal-${calendar}-${suffix}`;
    const rows = [el("label", { for: id("timezone"), text: "Time zone" }), inputs.timezone = el("input", { id: id("timezone"), value: c.timezone })];
    for (const day of DAYS) {
      rows.push(el("label", { for: id(day), text: day }), inputs[day] = el("input", { id: id(day), value: (c.weekly[day] || []).join(", "), placeholder: "08:00-16:00" }));
    }
    const holidays = el("textarea", { id: id("holidays"), rows: 3 }); holidays.value = c.holidays.join("\n");
    const at = el("input", { id: id("at"), type: "datetime-local" });
    const users = Object.entries(hours.used_by).filter(([, cal]) => cal === calendar).map(([q]) => q);
    return el("details", { class: "node", "data-calendar": calendar, open: true },
      el("summary", { text: `${calendar}${users.length ? ` (queues ${users.join(", ")})` : ""}` }),
      ...rows, el("label", { for: id("holidays"), text: "Closed on (one date a line, YYYY-MM-DD)" }), holidays,
      el("label", { for: id("at"), text: "From (empty: now)" }), at,
      el("button", { type: "button", text: "Save hours", onclick: () => attempt(`Hours of ${calendar}`, async () => {
        const weekly = {};
        for (const day of DAYS) {
          const ranges = inputs[day].value.split(",").map((r) => r.trim()).filter(Boolean);
          if (ranges.length) weekly[day] = ranges;
        }
        const done = await api("PUT", `/desk/api/flows/${encodeURIComponent(name)}/calendars/${encodeURIComponent(calendar)}`, {
          calendar: { timezone: inputs.timezone.value, weekly, holidays: holidays.value.split("\n").map((d) => d.trim()).filter(Boolean) },
          active_version: hours.version, at: at.value ? new Date(at.value).toISOString() : null,
        });
        say(done.scheduled_for ? `The new hours apply from ${new Date(done.scheduled_for).toLocaleString()}.` : `The new hours apply now (version ${done.version}).`);
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
    $("audit").append(el("tr", {}, el("td", { text: new Date(e.at).toLocaleString() }), el("td", { text: e.actor }),
      el("td", { text: e.action }), el("td", { text: e.subject }), el("td", {}, el("code", { text: JSON.stringify(e.detail) }))));
    oldest = e.id;
  }
}

// ---- start ---------------------------------------------------------------------------------
const page = document.querySelector("[data-page]");
const start = {
  flow: initFlow,
  simulate: initSimulate,
  agents: initAgents,
  queues: () => loadQueues().catch((error) => say(`Loading: ${error.message}`, true)),
  hours: (p) => loadHours(p.dataset.flow).catch((error) => say(`Loading: ${error.message}`, true)),
  audit: () => {
    $("audit-subject").addEventListener("change", () => loadAudit());
    $("audit-more").addEventListener("click", () => loadAudit(true));
    loadAudit().catch((error) => say(`Loading: ${error.message}`, true));
  },
  home: () => {},
}[page && page.dataset.page];
if (start) start(page);
