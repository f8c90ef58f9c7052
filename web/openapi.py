"""The API's description (OpenAPI 3.1), hand-written: served at /api/openapi.json. Over 500
lines: one document, route by route, as clients read it; its parts are plain data."""

from __future__ import annotations

from typing import Any


def _op(
    summary: str, *, body: dict[str, Any] | None = None, auth: str = "bearer"
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{auth: []}],
        "responses": {
            "200": {"description": "done", "content": {"application/json": {}}},
            "4XX": {"$ref": "#/components/responses/Error"},
            "503": {"$ref": "#/components/responses/Error"},
        },
    }
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "properties": body}}},
        }
    return op


_S = {"type": "string"}
_NOTICE = {
    "kind": {"enum": ["offer", "office-change", "announcement"]},
    "segment": {"enum": ["new", "active", "inactive", "dormant"]},
    "clients": {"type": "array", "items": _S},
    "product": _S,
    "message": _S,
    "channel": {"enum": ["sms", "viber", "email", "letter"]},
}
# What a manual call is to: one of number, client_id (their number on record), callback_id.
_CALL = {
    "number": {"type": "string"},
    "client_id": {"type": "integer"},
    "callback_id": {"type": "integer"},
    "queue": {"type": "string"},
}
# The survey report's query parameters, as `centrala survey report`'s options.
_REPORT_QUERY = [
    {"name": "name", "in": "path", "required": True, "schema": _S},
    {"name": "version", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {"name": "campaign", "in": "query", "schema": _S},
    {"name": "period", "in": "query", "schema": {"enum": ["day", "week", "month"]}},
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"}},
]

# "Simulate this call": who calls, when, and the keys (see core/simulation.py).
_SIMULATE = {
    "caller": {
        "description": "a client on file, or a number looked up as a live call's is; "
        "omitted: a withheld number",
        "oneOf": [
            {
                "type": "object",
                "properties": {"client_id": {"type": "integer", "minimum": 1}},
                "required": ["client_id"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"number": {"type": "string", "maxLength": 40}},
                "required": ["number"],
                "additionalProperties": False,
            },
        ],
    },
    "at": {
        "type": "string",
        "format": "date-time",
        "description": "when the call is answered, with its zone (default: now)",
    },
    "keys": {
        "description": "0-9 * # A-D pressed when the line waits for a key; '>' before a key: "
        "typed during the prompt playing; w: let the timer run out (in a queue: its maximum "
        "wait); h: hang up. Or a list of such tokens and {key, after_seconds} (at most 100)",
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "items": {
                    "oneOf": [
                        {"type": "string"},
                        {
                            "type": "object",
                            "properties": {
                                "key": _S,
                                "after_seconds": {"type": "number", "minimum": 0},
                                "during_prompt": {"type": "boolean"},
                                "wait": {"const": True},
                                "hang_up": {"const": True},
                            },
                        },
                    ]
                },
            },
        ],
    },
    "version": {"type": "integer", "minimum": 1, "description": "default: the active one"},
    "draft": {"type": "boolean", "description": "true: the asker's draft (not with version)"},
}
_SIMULATE_SUMMARY = (
    "simulate a call to the flow with the live IVR and routing: the steps, the prompts heard "
    "(text in the call's language), the path as the call log stores it (calls.ivr_path) and "
    "where the call ends (queue and whether open, callback with its number and due time, "
    "hang-up, survey agreed; outcome as the call's row would have it). Errors: 400 bad_json, "
    "bad_request, bad_caller, unknown_client, bad_keys, bad_time, bad_version; 404 unknown_flow"
)


# Editing a flow (usecases/flow_editing.py): a draft per asker, published with a note.
_DRAFT = {
    "definition": {"type": "object", "description": "the whole flow, as dialplan/*.yaml"},
    "test_numbers": {
        "type": "array",
        "items": {"type": "string", "maxLength": 40},
        "maxItems": 20,
        "description": "calls from these numbers run the draft (once it passes the checks)",
    },
    "base_version": {
        "type": ["integer", "null"],
        "description": "the published version the edit is taken from (default: kept, or the "
        "active one for a new draft)",
    },
}
_FLOW_EDITING: list[tuple[str, str, str, dict[str, Any] | None]] = [
    (
        "/draft",
        "get",
        "your draft (saved: false - the active version to start from) and its problems, "
        "each at its node",
        None,
    ),
    (
        "/draft",
        "put",
        "save your draft; with no problems and test numbers, calls from those numbers run "
        "it. Errors: 422 invalid_flow (problems), 409 test_number_taken",
        _DRAFT,
    ),
    ("/draft", "delete", "discard your draft. Errors: 404 no_draft", None),
    (
        "/draft/prompts/{prompt}/{lang}",
        "put",
        "the body (a WAV, MP3, OGG or FLAC file, at most 2 minutes and 4 MB) as what the prompt "
        "plays in the language, in your draft. Errors: 422 bad_audio (nothing changed), 404 "
        "unknown_prompt",
        None,
    ),
    (
        "/draft/check",
        "post",
        "every problem of a flow, saved nowhere",
        {"definition": _DRAFT["definition"]},
    ),
    (
        "/publish",
        "post",
        "make your draft the live version (calls in progress keep theirs), or schedule it "
        "for `at`. Errors: 404 no_draft, 422 invalid_flow, 409 published_since (someone "
        "published since the draft was taken; nothing changed)",
        {
            "note": {"type": "string", "maxLength": 500},
            "at": {"type": "string", "format": "date-time"},
        },
    ),
    ("/versions", "get", "every published version: who, when, the note, which is active", None),
    ("/versions/{version}", "get", "one published version's definition", None),
    (
        "/diff",
        "get",
        "what changed between two versions (query from= and to=: a number, active or draft): "
        "the changes by path and a unified diff of the YAML",
        None,
    ),
    (
        "/live",
        "get",
        "per node of the live version: callers there now, and today's calls that reached it "
        "and hung up there (supervisors too)",
        None,
    ),
    (
        "/calendars",
        "get",
        "the live version's opening hours and holidays, and which queue keeps which",
        None,
    ),
    (
        "/calendars/{calendar}",
        "put",
        "new hours and holidays for a calendar, published as a new version now or at `at` "
        "(supervisors and admins). Errors: 422 invalid_flow, 409 published_since",
        {
            "calendar": {"type": "object", "description": "timezone, weekly, holidays"},
            "active_version": {"type": "integer"},
            "at": {"type": "string", "format": "date-time"},
            "note": {"type": "string", "maxLength": 500},
        },
    ),
    (
        "/versions/{version}/schedule",
        "delete",
        "take back a version scheduled to be published. Errors: 404 unknown_version",
        None,
    ),
    (
        "/rollback",
        "post",
        "publish an old version again as the newest. Errors: 404 unknown_version, 409 "
        "published_since (active_version given and another is live)",
        {
            "to": {"type": "integer", "minimum": 1},
            "active_version": {"type": "integer"},
            "note": {"type": "string", "maxLength": 500},
        },
    ),
]


def _diagram_op(auth: str) -> dict[str, Any]:
    who = " (supervisors and admins)" if auth != "bearer" else ""
    op = _op(
        "the flow's diagram as SVG: a shape per node type, edges labelled with keys and "
        "conditions, nodes with problems in red; each node links to #node-NAME and is the "
        "group with id flow-node-NAME. Errors: 404 unknown_flow/unknown_version/no_draft, "
        "422 invalid_flow, 503 diagram_unavailable" + who,
        auth=auth,
    )
    op["parameters"] = [
        {"name": "name", "in": "path", "required": True, "schema": _S},
        {
            "name": "version",
            "in": "query",
            "description": "a version number, active (the default) or draft (yours)",
            "schema": _S,
        },
    ]
    op["responses"]["200"] = {"description": "the diagram", "content": {"image/svg+xml": {}}}
    return op


def _flow_editing(prefix: str, auth: str) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, body in _FLOW_EDITING:
        admins_only = "/calendars" not in path and path != "/live"
        who = " (admins)" if auth != "bearer" and admins_only else ""
        paths.setdefault(f"{prefix}/flows/{{name}}{path}", {})[method] = _op(
            summary + who, body=body, auth=auth
        )
    paths[f"{prefix}/flows/{{name}}/diagram.svg"] = {"get": _diagram_op(auth)}
    return paths


# The roster and the audit trail (usecases/roster.py, web/admin_api.py).
_AGENT = {
    "id": _S,
    "name": _S,
    "role": {"enum": ["agent", "manager", "supervisor", "admin"]},
    "endpoint": _S,
    "skills": {"type": "array", "items": _S},
    "queues": {"type": "object", "additionalProperties": {"type": "integer"}},
    "active": {"type": "boolean"},
    "password": _S,
}
_ADMIN: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("/agents", "get", "every agent: role, phone, skills, queues with penalties, active", None),
    (
        "/agents",
        "post",
        "create an agent (a role other than agent: admins only). Errors: 409 agent_exists, "
        "422 unknown_queue",
        _AGENT,
    ),
    (
        "/agents/{agent_id}",
        "patch",
        "change an agent: the next call follows it; deactivated: logged out at once. Errors: "
        "403 (roles, supervisors and admins: admins only), 409 last_admin",
        {k: v for k, v in _AGENT.items() if k not in ("id", "password")},
    ),
    (
        "/agents/{agent_id}/password",
        "post",
        "set a new password: the agent's log-ins end",
        {"password": _S},
    ),
    ("/queues", "get", "every queue's live settings and members", None),
    (
        "/queues/{queue_id}",
        "patch",
        "change some of a queue's live settings (the next caller gets them). Errors: 422 "
        "invalid_queue",
        {"max_wait_seconds": {"type": "integer"}, "priority": {"type": "integer"}},
    ),
    (
        "/queues/{queue_id}/members",
        "put",
        "exactly these agents in the queue, with their penalties (0-100, lower first)",
        {"members": {"type": "object", "additionalProperties": {"type": "integer"}}},
    ),
    (
        "/agents/{agent_id}/history",
        "get",
        "the agent's changes, newest first (who, when, before and after; undoable or not)",
        None,
    ),
    (
        "/agents/{agent_id}/undo/{entry_id}",
        "post",
        "make the agent what they were before that change, with an edit's checks. Errors: "
        "404 unknown_change, 409 changed_since (changed again since), 422 not_undoable",
        None,
    ),
    (
        "/queues/{queue_id}/history",
        "get",
        "the queue's changes of settings and members, newest first",
        None,
    ),
    (
        "/queues/{queue_id}/undo/{entry_id}",
        "post",
        "make the queue's settings or members what they were before that change. Errors: "
        "404 unknown_change, 409 changed_since",
        None,
    ),
    (
        "/audit",
        "get",
        "the audit trail, newest first (query subject=flow:NAME|agent:ID|queue:ID, before=ID, "
        "limit=N)",
        None,
    ),
]


def _admin(prefix: str, auth: str) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, body in _ADMIN:
        paths.setdefault(f"{prefix}/admin{path}", {})[method] = _op(summary, body=body, auth=auth)
    return paths


# Survey definitions edited like flows (usecases/survey_editing.py, web/survey_edit_api.py).
_SURVEY_EDITING: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("", "get", "every survey's active version: name, version, description, who, when", None),
    (
        "/{name}/draft",
        "get",
        "your draft of the survey: definition, base_version, problems ({at, node: the "
        "question, message}); without one the active version, or a starter for a new name",
        None,
    ),
    (
        "/{name}/draft",
        "put",
        "save your draft as given, problems and all",
        {"definition": {"type": "object"}},
    ),
    ("/{name}/draft", "delete", "discard your draft", None),
    (
        "/{name}/draft/check",
        "post",
        "every problem of a definition, saved nowhere",
        {"definition": {"type": "object"}},
    ),
    (
        "/{name}/publish",
        "post",
        "make your draft the active version (prompts synthesised first); the next survey "
        "call and the next campaign ask it. Errors: 404 no_draft, 409 published_since (names "
        "who published what since the draft was taken), 422 has_problems, 502 prompts_failed",
        {"note": _S},
    ),
    ("/{name}/versions", "get", "every version with who, when and the note", None),
    ("/{name}/versions/{version}", "get", "one version's definition", None),
    (
        "/{name}/diff",
        "get",
        "what changed: query from= and to= (a version number, active or draft): changes by "
        "path and a unified YAML diff (text)",
        None,
    ),
    (
        "/{name}/rollback",
        "post",
        "publish an old version again as the newest; active_version: the version you saw "
        "active (409 published_since when another is)",
        {"to": {"type": "integer"}, "active_version": {"type": "integer"}, "note": _S},
    ),
]
# A campaign's settings edited while it runs (usecases/campaign_settings.py).
_CAMPAIGN_SETTINGS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    (
        "/{campaign}/settings",
        "get",
        "every setting with its value (defaults filled), the revision, the keys fixed since "
        "the contacts were loaded, whether it may still change",
        None,
    ),
    (
        "/{campaign}/settings",
        "put",
        "save the settings onto the revision read; the running dialler takes them at its "
        "next tick. Errors: 409 changed_since (another edit saved since), 409 "
        "bad_campaign_state (stopped or finished), 422 bad_settings (problems: {at, "
        "message}), 422 fixed_setting",
        {"settings": {"type": "object"}, "revision": {"type": "integer"}, "note": _S},
    ),
    (
        "/{campaign}/settings/history",
        "get",
        "every saved edit of the settings, newest first: revision, when, who, note, changes",
        None,
    ),
]


def _editing(
    prefix: str, auth: str, table: list[tuple[str, str, str, dict[str, Any] | None]]
) -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, body in table:
        paths.setdefault(f"{prefix}{path}", {})[method] = _op(summary, body=body, auth=auth)
    return paths


def _console_campaigns(prefix: str) -> dict[str, dict[str, Any]]:
    """The campaign routes the console calls on the desk (as /api/campaigns/...)."""
    paths = {
        f"{prefix}": {"get": _op("every campaign", auth=_DESK)},
        f"{prefix}/{{campaign}}": {"get": _op("a campaign with its progress", auth=_DESK)},
        **{
            f"{prefix}/{{campaign}}/{op}": {"post": _op(f"{op} the campaign", auth=_DESK)}
            for op in ("start", "pause", "stop")
        },
    }
    return {**paths, **_editing(prefix, _DESK, _CAMPAIGN_SETTINGS)}


def _interval_query(
    filters: tuple[str, ...], intervals: tuple[str, ...] = ("15min", "hour", "day", "week", "month")
) -> list[dict[str, Any]]:
    """A report by interval's query: its local days, its interval and its ``filters``."""
    return [
        {"name": "since", "in": "query", "schema": {**_S, "format": "date"}},
        {"name": "until", "in": "query", "schema": {**_S, "format": "date"}},
        {"name": "interval", "in": "query", "schema": {"enum": list(intervals)}},
        *({"name": f, "in": "query", "schema": _S} for f in filters),
    ]


def _queue_report(prefix: str, auth: str) -> dict[str, dict[str, Any]]:
    """The queues report (core/queue_report.py): JSON and the same rows as CSV."""
    summary = (
        "per queue and interval (local days, Europe/Sarajevo): offered, answered, answered in "
        "time, abandoned, short abandons (under 5 s, counted apart), overflowed, callbacks, "
        "service level, abandonment rate, average, 90th-percentile and longest wait; a call "
        "that overflowed or was transferred to another queue is offered to each. Errors: "
        "400 bad_interval/bad_date/too_long/bad_request"
    )
    query = _interval_query(("queue",))
    return _json_and_csv(prefix, "/queues", auth, query, summary, "the same as CSV")


def _agent_report(prefix: str, auth: str) -> dict[str, dict[str, Any]]:
    """The agents report (core/agent_report.py): JSON and the same rows as CSV."""
    summary = (
        "per agent and interval (local days, Europe/Sarajevo), spans cut at the intervals' "
        "edges, an agent still logged in counted until now: seconds logged in, talking, on "
        "hold, in wrap-up, paused (and by reason), idle; calls handled (inbound, outbound), "
        "average handle time, occupancy, dispositions. Errors: 400 bad_interval/bad_date/"
        "too_long/bad_agent/bad_queue/bad_request"
    )
    query = _interval_query(("agent", "queue"))
    return _json_and_csv(prefix, "/agents", auth, query, summary, "the same as CSV")


def _campaign_report(prefix: str, auth: str) -> dict[str, dict[str, Any]]:
    """The campaigns report (core/campaign_report.py): JSON and the same rows as CSV."""
    query = [
        *_interval_query(("campaign",), ("hour", "day", "week", "month")),
        {
            "name": "kind",
            "in": "query",
            "schema": {"enum": ["survey", "sales", "leads", "procedural", "callbacks"]},
        },
    ]
    summary = (
        "per campaign and interval (local days, Europe/Sarajevo): dials, live answers, "
        "connected to an agent (a survey campaign: completed, partial, refused), abandoned and "
        "the abandonment rate as the dialler counts it, AMD verdicts, machine, no answer, "
        "busy, failed, dispositions; per campaign its contacts left, done and closed by "
        "reason. Errors: 400 bad_interval/bad_date/too_long/bad_filter/bad_request, 404 "
        "unknown_campaign"
    )
    return _json_and_csv(
        prefix, "/campaigns", auth, query, summary, "the same as CSV, a column per disposition"
    )


def _json_and_csv(
    prefix: str, path: str, auth: str, query: list[dict[str, Any]], summary: str, csv: str
) -> dict[str, dict[str, Any]]:
    """A report's two operations: its JSON, and the same rows as CSV (``path``.csv)."""
    paths: dict[str, dict[str, Any]] = {}
    for suffix, text in (("", summary), (".csv", csv)):
        op = _op(text, auth=auth)
        op["parameters"] = query
        if suffix:
            op["responses"]["200"] = {"description": "CSV", "content": {"text/csv": {}}}
        paths[f"{prefix}{path}{suffix}"] = {"get": op}
    return paths


def _report_op(summary: str, *, csv: bool = False, auth: str = "bearer") -> dict[str, Any]:
    op = _op(summary, auth=auth)
    op["parameters"] = _REPORT_QUERY
    if csv:
        op["responses"]["200"] = {
            "description": "CSV, one row per answer",
            "content": {"text/csv": {}},
        }
    return op


def _inquiries(auth: str = "bearer") -> dict[str, dict[str, Any]]:
    """.../inquiries: written inquiries (e-mail, the contact form, Facebook / Instagram)."""
    one = "/{inquiry_id}"
    base = "/api/inquiries" if auth == "bearer" else "/desk/api/inquiries"
    text = {"text": _S}
    return {
        base + "/rules": {
            "get": _op(
                "the classification rules (keywords per kind and language, sender patterns, "
                "channel defaults, order) as an admin edits them: {version, rules}",
                auth=auth,
            ),
            "put": _op(
                "save the rules over the version loaded (admins): 422 with the place of a "
                "mistake (rules_*, details.path), 409 rules_changed when saved meanwhile",
                body={"version": {"type": "integer"}, "rules": {"type": "object"}},
                auth=auth,
            ),
        },
        base: {
            "get": _op(
                "written inquiries, newest first: channel, kind, state, subject, client, sender, "
                "queue, priority, owner and times; filters state, kind, queue, owner, client; "
                "limit (<= 500) and before (the last id seen); {inquiries, next_before}",
                auth=auth,
            )
        },
        base + one: {
            "get": _op(
                "one inquiry with its messages (in, out, notes; attachments named), its log "
                "(states, assignments, kind changes, escalations) and its SLA (due times in "
                "business time, breached, near_breach)",
                auth=auth,
            )
        },
        base + one + "/attachments/{attachment_id}": {
            "get": _op("an attachment's file, as a download", auth=auth)
        },
        base + one + "/reply": {
            "post": _op(
                "answer the client: queued to leave by the channel it came in (e-mail, "
                "Facebook / Instagram); the inquiry waits for the client (its SLA clock stops). "
                "409 inquiry_state (closed), no_written_channel (a form with a phone only)",
                body=text,
                auth=auth,
            )
        },
        base + one + "/assign": {
            "post": _op(
                "take it (no agent_id) or give it to agent_id (manage_inquiries)",
                body={"agent_id": _S},
                auth=auth,
            )
        },
        base + one + "/escalate": {
            "post": _op(
                "escalate it to the supervisor (and for complaints, donation requests and credit "
                "applications the client's manager), each once; 409 already_escalated",
                auth=auth,
            )
        },
        base + one + "/close": {"post": _op("close it (409 inquiry_state if closed)", auth=auth)},
        base + one + "/kind": {
            "post": _op(
                "change its kind",
                body={
                    "kind": {
                        "enum": [
                            "complaint",
                            "donation_request",
                            "credit_application",
                            "general_question",
                            "change_of_data",
                        ]
                    }
                },
                auth=auth,
            )
        },
        base + one + "/note": {"post": _op("an internal note", body=text, auth=auth)},
        base + one + "/client": {
            "post": _op(
                "link an unknown sender's inquiry to a client: client_id, or new (a client made "
                "from the sender, name optional); a client with no e-mail gets the sender's",
                body={"client_id": {"type": "integer"}, "new": {"type": "boolean"}, "name": _S},
                auth=auth,
            )
        },
    }


def _letters(auth: str = "bearer") -> dict[str, Any]:
    """POST .../letters: a batch of printed letters as one PDF."""
    op = _op(
        "printed letters (supervisors and admins): a kind's letter to each client the contact "
        "policy lets through by letter (a postal address, not opted out, not printed that day "
        "unless reprint), in their language, one A4 page each for a DIN 5008 type B window "
        "envelope, as one PDF (an attachment; X-Centrala-Letters: how many, "
        "X-Centrala-Reprinted: how many of them again, X-Centrala-Skipped: reason=count, ...), "
        "each new letter kept in the outbox as printed. Errors: 400 bad_kind/bad_clients/"
        "bad_segment/needs_product/needs_message/too_long/bad_reprint/unknown_field/"
        "unknown_clients, 422 nothing_to_print (details.skipped)",
        body={
            "kind": {
                "enum": ["birthday", "offer", "office_change", "document_expiry", "announcement"]
            },
            "clients": {"type": "array", "items": {"type": "integer"}, "maxItems": 10000},
            "segment": {"enum": ["new", "active", "inactive", "dormant"]},
            "product": {"type": "string", "maxLength": 500, "description": "an offer's"},
            "message": {
                "type": "string",
                "maxLength": 500,
                "description": "office_change's, announcement's",
            },
            "reprint": {
                "type": "boolean",
                "description": "print again those printed that day already, as they were",
            },
        },
        auth=auth,
    )
    op["responses"]["200"] = {"description": "the PDF", "content": {"application/pdf": {}}}
    return op


def _queued_letters(auth: str = "bearer") -> dict[str, Any]:
    """POST .../letters/queued: the letters the notices queued, as one PDF."""
    op = _op(
        "the letters the notices queued for printing (clients whose channel is a letter), the "
        "oldest first, as one PDF (X-Centrala-Letters: how many), each marked printed. "
        "Errors: 400 bad_limit/unknown_field, 422 nothing_to_print",
        body={"limit": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1000}},
        auth=auth,
    )
    op["requestBody"]["required"] = False
    op["responses"]["200"] = {"description": "the PDF", "content": {"application/pdf": {}}}
    return op


_DESK = "session"  # the browser's session cookie, plus the X-CSRF-Token header on changes

# The call log report's filters (core/calllog_report.py): since/until are local days
# (Europe/Sarajevo), both included; any other parameter is 400 unknown_filter.
_CALLS_QUERY = [
    {"name": "since", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "until", "in": "query", "schema": {"type": "string", "format": "date"}},
    {"name": "direction", "in": "query", "schema": {"enum": ["inbound", "outbound"]}},
    {"name": "queue", "in": "query", "schema": _S},
    {"name": "agent", "in": "query", "schema": _S},
    {"name": "campaign", "in": "query", "schema": _S, "description": "the campaign's name"},
    {"name": "client", "in": "query", "schema": {"type": "integer"}},
    {"name": "outcome", "in": "query", "schema": _S},
    {"name": "disposition", "in": "query", "schema": _S},
]
_PAGE_QUERY = [
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "schema": _S, "description": "the last page's next_cursor"},
]


def _calls_op(*, csv: bool, auth: str = "bearer") -> dict[str, Any]:
    if csv:
        op = _op(
            "every matching call as CSV (formula-safe cells), newest first, streamed",
            auth=auth,
        )
        op["parameters"] = _CALLS_QUERY
        op["responses"]["200"] = {
            "description": "CSV, one row per call",
            "content": {"text/csv": {}},
        }
    else:
        op = _op(
            "the call log, newest first: each call's IVR path, queue, agents, wait, talk and "
            "hold seconds, outcome, disposition and notes, times in Europe/Sarajevo; "
            "{timezone, limit, calls, next_cursor}",
            auth=auth,
        )
        op["parameters"] = _CALLS_QUERY + _PAGE_QUERY
    return op


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Centrala",
        "version": "0.1.0",
        "description": (
            "Machines use /api/* with `Authorization: Bearer <token>`: a per-user token "
            "(`centrala token create`, or POST /desk/api/tokens) acts with its agent's role "
            "now; 401 for a missing, wrong, expired or revoked token, 403 when the role may "
            "not (each operation's x-centrala-action names what it needs). The host's own "
            "token (CENTRALA_API_TOKEN, else DATA_DIR/api-token) has every right. "
            "The agent desktop's browser uses /desk/api/* with its session cookie and the "
            "X-CSRF-Token header (from the page's meta tag) on every change. Errors are JSON "
            "with a stable error_id; Asterisk unreachable is 503, and so is an agent's "
            "command to a standby instance (error_id standby: the message names the owner)."
        ),
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "centrala_session"},
        },
        "responses": {
            "Error": {
                "description": "error",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "error_id": _S,
                                "message": _S,
                                "details": {"type": "object"},
                                "field": _S,
                            },
                        }
                    }
                },
            }
        },
    },
    "paths": {
        "/api/agents/{agent_id}/login": {
            "post": _op(
                "log an agent in (their phone: endpoint, or their default; 409 "
                "logged_in_elsewhere: on another node's instance, while that node is owned; "
                "409 nailed_one_node: nailed on an instance owning several nodes)",
                body={"endpoint": _S, "mode": {"enum": ["per_call", "nailed"]}},
            )
        },
        "/api/agents/{agent_id}/logout": {"post": _op("log an agent out")},
        "/api/agents/{agent_id}/pause": {"post": _op("pause with a reason", body={"reason": _S})},
        "/api/agents/{agent_id}/ready": {"post": _op("end a pause or the wrap-up")},
        "/api/agents/{agent_id}/call": {
            "post": _op(
                "call out for the agent: their phone rings, then the client through the "
                "outbound trunk (202: placed; refusals: bad_number, do_not_call, "
                "outside_calling_window, agent_busy, not_logged_in, trunk_busy)",
                body=_CALL,
            )
        },
        "/api/acd": {"get": _op("the ACD's live snapshot: queues and agents")},
        "/api/calls/{call_id}/transfer": {
            "post": _op(
                "transfer a live call: to agent:ID, queue:ID, supervisor, or survey[:NAME] "
                "(blind only: the caller leaves for the post-call survey)",
                body={"to": _S, "mode": {"enum": ["blind", "attended"]}},
            )
        },
        "/api/calls/{call_id}/transfer/complete": {"post": _op("complete an attended transfer")},
        "/api/calls/{call_id}/transfer/cancel": {"post": _op("cancel an attended transfer")},
        "/api/calls/{call_id}/hold": {"post": _op("put the caller on hold (music)")},
        "/api/calls/{call_id}/resume": {"post": _op("take the caller off hold")},
        "/api/calls/{call_id}/recording/pause": {
            "post": _op(
                "pause the call's recording (card data is read out); 409 when paused already",
                body={"agent_id": _S},
            )
        },
        "/api/calls/{call_id}/recording/resume": {
            "post": _op("record the call again", body={"agent_id": _S})
        },
        "/api/agents/{agent_id}/preview": {
            "get": _op("preview: the next contact of the agent's campaigns, held for them")
        },
        "/api/agents/{agent_id}/preview/{contact_id}/call": {
            "post": _op("call the held contact from the agent's nailed-up phone")
        },
        "/api/agents/{agent_id}/preview/{contact_id}/skip": {
            "post": _op("skip the held contact", body={"reason": _S})
        },
        "/api/campaigns": {
            "get": _op("every campaign"),
            "post": _op(
                "a draft campaign: a survey campaign (survey, segments or contacts_csv, "
                "settings), or with mode an agent campaign (queue, and segment, contacts_csv "
                "or procedure)",
                body={"name": _S, "survey": _S, "mode": _S, "queue": _S, "settings": {}},
            ),
        },
        "/api/notices": {
            "get": _op(
                "the outbox, newest first: each message's client, kind, channel, state, "
                "times and error; filters client, kind, channel, state; limit (≤ 500) and "
                "before (the last id seen) for the next page; {notices, next_before}"
            ),
            "post": _op(
                "queue an offer (product), office change or announcement (message) to a "
                "segment or to clients by external id, under the contact policy, once per "
                "client for the same text on the same day; {added, already, skipped}",
                body=_NOTICE,
            ),
        },
        "/api/notices/preview": {
            "post": _op(
                "what sending it would do, nothing written: {clients, by_channel, already, "
                "skipped (by reason), samples (one real message per language)}",
                body=_NOTICE,
            )
        },
        "/api/notices/status": {
            "get": _op("the outbox's counts by kind, channel and state; the channels set up")
        },
        "/api/campaigns/{campaign}": {"get": _op("a campaign with its progress")},
        "/api/campaigns/{campaign}/start": {"post": _op("run it")},
        "/api/campaigns/{campaign}/pause": {"post": _op("pause it")},
        "/api/campaigns/{campaign}/stop": {"post": _op("stop it for good")},
        "/api/campaigns/calls/{call_id}/disposition": {
            "post": _op(
                "an agent campaign call's disposition",
                body={"agent_id": _S, "disposition": _S, "due": _S, "note": _S},
            )
        },
        "/api/surveys/{name}/report": {
            "get": _report_op(
                "survey results: NPS overall, by segment, version and period (95% interval), "
                "response and completion rates, answers per question"
            )
        },
        "/api/surveys/{name}/answers.csv": {
            "get": _report_op("every answer row of the survey as CSV", csv=True)
        },
        "/api/reports/calls": {"get": _calls_op(csv=False)},
        **_inquiries(),
        "/api/letters": {"post": _letters()},
        "/api/letters/queued": {"post": _queued_letters()},
        "/api/reports/calls.csv": {"get": _calls_op(csv=True)},
        "/api/flows/{name}/simulate": {"post": _op(_SIMULATE_SUMMARY, body=_SIMULATE)},
        **_flow_editing("/api", "bearer"),
        **_admin("/api", "bearer"),
        **_editing("/api/surveys", "bearer", _SURVEY_EDITING),
        **_editing("/api/campaigns", "bearer", _CAMPAIGN_SETTINGS),
        **_queue_report("/api/reports", "bearer"),
        **_campaign_report("/api/reports", "bearer"),
        **_agent_report("/api/reports", "bearer"),
        "/api/openapi.json": {
            "get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI"}}}
        },
        "/desk/api/me": {
            "get": _op("the logged-in agent's state and transfer targets", auth=_DESK)
        },
        "/desk/api/me/language": {
            "post": _op(
                "the language of the logged-in agent's pages from the next page on (stored on "
                "their agent row); 422 bad_field for a language not shipped",
                body={"language": {"enum": ["bs", "en"]}},
                auth=_DESK,
            )
        },
        "/desk/api/call": {"post": _op("call out as the logged-in agent", body=_CALL)},
        "/desk/api/state": {
            "post": _op(
                "set own state",
                body={"state": {"enum": ["available", "paused", "logged_out"]}, "reason": _S},
                auth=_DESK,
            )
        },
        "/desk/api/softphone": {
            "post": _op(
                "new SIP credentials for this browser's softphone (username, password, realm, "
                "ws_url, uri, register_expires), shown once; the agent's previous ones stop "
                "working",
                auth=_DESK,
            ),
            "delete": _op("take the agent's browser softphone away", auth=_DESK),
        },
        "/desk/api/calls/{call_id}/hangup": {"post": _op("hang up the call", auth=_DESK)},
        "/desk/api/calls/{call_id}/transfer": {
            "post": _op(
                "transfer own call",
                body={"to": _S, "mode": {"enum": ["blind", "attended"]}},
                auth=_DESK,
            )
        },
        "/desk/api/calls/{call_id}/transfer/complete": {"post": _op("complete", auth=_DESK)},
        "/desk/api/calls/{call_id}/transfer/cancel": {"post": _op("cancel", auth=_DESK)},
        "/desk/api/calls/{call_id}/hold": {"post": _op("hold", auth=_DESK)},
        "/desk/api/calls/{call_id}/resume": {"post": _op("resume", auth=_DESK)},
        "/desk/api/calls/{call_id}/recording/pause": {
            "post": _op("pause own call's recording (supervisors: any call's)", auth=_DESK)
        },
        "/desk/api/calls/{call_id}/recording/resume": {
            "post": _op("record the call again", auth=_DESK)
        },
        "/desk/api/calls/{call_id}/recordings": {
            "get": _op(
                "the call's recordings: length, sha256, paused stretches, audio links "
                "(supervisors and admins: any call; agents: the calls they handled)",
                auth=_DESK,
            )
        },
        "/desk/api/recordings/{recording_id}/audio": {
            "get": {
                **_op("the recording's audio (Range requests; ?download=1 saves it)", auth=_DESK),
                "responses": {
                    "200": {"description": "the file", "content": {"audio/wav": {}}},
                    "206": {"description": "the range asked for"},
                    "4XX": {"$ref": "#/components/responses/Error"},
                },
            }
        },
        "/desk/api/calls/{call_id}/disposition": {
            "post": _op(
                "the call's disposition (calls.disposition + interactions; follow-up task)",
                body={
                    "category": {
                        "enum": ["information", "sales", "complaint", "satisfaction", "suggestion"]
                    },
                    "outcome": {"enum": ["resolved", "follow_up", "escalated", "not_resolved"]},
                    "note": _S,
                    "follow_up": _S,
                    "follow_up_due": {"type": "string", "format": "date-time"},
                },
                auth=_DESK,
            )
        },
        "/desk/api/calls/{call_id}/callback": {
            "post": _op(
                "schedule a callback",
                body={"due_at": {"type": "string", "format": "date-time"}, "note": _S},
                auth=_DESK,
            )
        },
        "/desk/api/clients": {
            "get": _op("search clients by name or phone (?q=)", auth=_DESK),
            "post": _op(
                "create a client",
                body={"name": _S, "phones": _S, "language": _S, "client_type": _S},
                auth=_DESK,
            ),
        },
        "/desk/api/clients/{client_id}": {
            "get": _op("a client's record, history and audit trail", auth=_DESK),
            "patch": _op(
                "edit contact data (each change audited)",
                body={
                    "name": _S,
                    "phones": _S,
                    "language": _S,
                    "client_type": _S,
                    "document_expiry": {"type": "string", "format": "date"},
                },
                auth=_DESK,
            ),
        },
        "/desk/api/wallboard": {"get": _op("the wallboard's figures (supervisor)", auth=_DESK)},
        "/desk/api/flows/{name}/simulate": {
            "post": _op(
                "simulate a call to the flow (supervisors and admins; as /api/flows/{name}/"
                "simulate)",
                body=_SIMULATE,
                auth=_DESK,
            )
        },
        **_flow_editing("/desk/api", _DESK),
        **_admin("/desk/api", _DESK),
        **_editing("/desk/api/surveys", _DESK, _SURVEY_EDITING),
        **_console_campaigns("/desk/api/campaigns"),
        **_queue_report("/desk/api/reports", _DESK),
        **_campaign_report("/desk/api/reports", _DESK),
        **_agent_report("/desk/api/reports", _DESK),
        "/desk/api/tokens": {
            "get": _op(
                "API tokens: your own; everyone's with the manage_roles action (admins), "
                "?agent_id= for one agent's. Each: id, prefix, agent_id, name, state "
                "(active|expired|revoked), created_at/_by, expires_at, revoked_at, "
                "last_used_at/_from; never the secret",
                auth=_DESK,
            ),
            "post": _op(
                "a new API token of yours, with your role at each use (201): the token is in "
                "this answer only. Errors: 422 bad_field (name, expires_days), 409 "
                "too_many_tokens",
                body={
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "expires_days": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 3650,
                        "description": "omitted: never expires",
                    },
                },
                auth=_DESK,
            ),
        },
        "/desk/api/tokens/{token_id}": {
            "delete": _op(
                "revoke a token: your own, or anyone's with manage_roles (404 otherwise)",
                auth=_DESK,
            )
        },
        "/desk/api/reports/calls": {"get": _calls_op(csv=False, auth=_DESK)},
        **_inquiries(_DESK),
        "/desk/api/letters": {"post": _letters(_DESK)},
        "/desk/api/letters/queued": {"post": _queued_letters(_DESK)},
        "/desk/api/reports/calls.csv": {"get": _calls_op(csv=True, auth=_DESK)},
        "/desk/api/surveys/{name}/answers.csv": {
            "get": _report_op("every answer row as CSV (supervisor)", csv=True, auth=_DESK)
        },
    },
}
