"""The admin console's pages under /admin: the flow editor (forms over every node and prompt,
the problems at their nodes, the diagram, test numbers, publish now or later, versions with
their diff and roll back, "Simulate this call"), the roster (agents and queues), the opening
hours, the audit trail, the survey editor (the flow editor's drafts, checks, versions and roll
back over a survey's questions and prompts) and the campaigns with their settings. Each page
is a shell; static/admin.js fills it from the same /desk/api routes machines call under /api
(web.flow_api, web.admin_api, ...), so the console can do nothing the API cannot and every
change goes through the same checks."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web

from web.auth import Action, may
from web.http import WEB, _page_user, page_context

# (path, what the user must be allowed, template)
PAGES: list[tuple[str, Action, str]] = [
    ("/admin/flows/{name}", Action.EDIT_FLOWS, "admin_flow.html"),
    ("/admin/simulate/{name}", Action.SIMULATE_CALLS, "admin_simulate.html"),
    ("/admin/agents", Action.EDIT_AGENTS, "admin_agents.html"),
    ("/admin/queues", Action.EDIT_QUEUES, "admin_queues.html"),
    ("/admin/hours/{name}", Action.EDIT_HOURS, "admin_hours.html"),
    ("/admin/audit", Action.VIEW_AUDIT, "admin_audit.html"),
    # Own tokens; an admin's page lists and revokes everyone's (web/tokens.py decides).
    ("/admin/tokens", Action.SIMULATE_CALLS, "admin_tokens.html"),
    ("/admin/surveys", Action.EDIT_SURVEYS, "admin_surveys.html"),
    ("/admin/surveys/{name}", Action.EDIT_SURVEYS, "admin_survey.html"),
    # Supervisors see the campaigns and their settings; changing them is EDIT_SURVEYS (`may`).
    ("/admin/campaigns", Action.VIEW_REPORTS, "admin_campaigns.html"),
]
CONSOLE = (
    Action.EDIT_FLOWS,
    Action.SIMULATE_CALLS,
    Action.EDIT_AGENTS,
    Action.EDIT_QUEUES,
    Action.EDIT_HOURS,
    Action.VIEW_AUDIT,
    Action.EDIT_SURVEYS,
    Action.VIEW_REPORTS,
)


def _context(request: web.Request, user: Any) -> dict[str, Any]:
    # The page and its script (static/admin.js, its texts embedded) in the user's language.
    # `name` is the page's flow or survey; the menu's flow links go to `flow` (a survey's
    # name is no flow's).
    name = request.match_info.get("name", "infoline")
    survey_page = request.path.startswith("/admin/surveys/")
    return page_context(
        user.language,
        ("admin.js",),
        user=user,
        csrf=request.app[WEB].sessions.csrf_token(user.nonce),
        name=name,
        flow="infoline" if survey_page else name,
        may={action.value: may(user.role, action) for action in CONSOLE},
    )


async def index(request: web.Request) -> web.StreamResponse:
    user = await _page_user(request, Action.SIMULATE_CALLS)  # supervisors and admins
    return aiohttp_jinja2.render_template("admin.html", request, _context(request, user))


def _page(action: Action, template: str) -> Any:
    async def page(request: web.Request) -> web.StreamResponse:
        user = await _page_user(request, action)
        name = request.match_info.get("name")
        if name is not None and not 0 < len(name) <= 64:
            raise web.HTTPNotFound(text="no such flow or survey")
        return aiohttp_jinja2.render_template(template, request, _context(request, user))

    return page


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin", index),
        *(web.get(path, _page(action, template)) for path, action, template in PAGES),
    ]
