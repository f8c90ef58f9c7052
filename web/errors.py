"""The one place an error becomes an HTTP answer, for every route (pages, /desk/api, /api):
any ``DomainError`` is ``{"error_id", "message", "details"}`` JSON with its status (a form
error also names its ``field`` at the top, as the desk's API always did); a failed upstream
(Asterisk) is 503 when it is unavailable, else 502.

And the guard of the bearer API (/api): who a token says is asking (the host's own token, or
a per-user one of models.api_tokens with its agent's role now), and what each /api route
needs, declared once beside its handler with ``needs`` and held against web.auth's
``ROLE_ACTIONS``. A route that declares nothing is refused (tests/unit/test_api_roles.py
walks the router so none ships that way)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from core.errors import DomainError, UpstreamError
from models.api_tokens import ApiTokenStore
from models.db import is_outage
from web.auth import Action, User, may

log = structlog.get_logger(__name__)

# What a request that needs the database answers while it is away: calls and the desks of
# agents already logged in go on from memory; this is for what only the database can do.
DB_AWAY = (
    "The database is unavailable. Calls are still answered and agents already logged in"
    " keep their desks; this needs the database: try again when it is back."
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_json(
    status: int, error_id: str, message: str, details: dict[str, Any] | None = None
) -> web.Response:
    body: dict[str, Any] = {"error_id": error_id, "message": message, "details": details or {}}
    if details and "field" in details:
        body["field"] = details["field"]
    return web.json_response(body, status=status)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        return error_json(exc.status, exc.error_id, str(exc), exc.details)
    except UpstreamError as exc:
        return error_json(exc.http_status, exc.error_id, str(exc))
    except web.HTTPException:
        raise
    except Exception as exc:
        if not is_outage(exc):
            raise
        if request.path.startswith(("/api/", "/desk/api/")):
            response = error_json(503, "database_unavailable", DB_AWAY)
        else:
            response = web.Response(status=503, text=DB_AWAY)
        response.headers["Retry-After"] = "5"
        return response


def bearer_ok(header: str | None, token: str) -> bool:
    """Exactly ``Bearer <token>``. aiohttp hands over non-UTF-8 header bytes as surrogates,
    which cannot be encoded back: such a header is simply wrong, not a server error."""
    given = bearer(header)
    return given is not None and hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


def bearer(header: str | None) -> str | None:
    """The token of an exact ``Bearer <token>`` header, else None."""
    if header is None or not header.startswith("Bearer "):
        return None
    given = header.removeprefix("Bearer ")
    try:
        given.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return given


@dataclass(frozen=True)
class Need:
    """What an /api route needs: ``action``; acting for an agent other than the token's own
    (the route's ``{agent_id}``, or one named in the body: ``check_acting_for``) needs
    ``others`` too, and with ``others`` None only the agent themself may."""

    action: Action
    others: Action | None = None

    def allows_for(self, user: User, agent_id: str) -> bool:
        """Whether ``user`` (who may ``action``) may act for ``agent_id``."""
        if agent_id == user.agent_id:
            return True
        return self.others is not None and may(user.role, self.others)


_NEED = "centrala_need"
ApiHandler = TypeVar("ApiHandler", bound=Callable[..., Any])


def needs(action: Action, others: Action | None = None) -> Callable[[ApiHandler], ApiHandler]:
    """Declares what the /api handler it decorates needs (see ``Need``)."""

    def mark(handler: ApiHandler) -> ApiHandler:
        setattr(handler, _NEED, Need(action, others))
        return handler

    return mark


def route_need(handler: object) -> Need | None:
    need = getattr(handler, _NEED, None)
    return need if isinstance(need, Need) else None


# The host's own token (CENTRALA_API_TOKEN or DATA_DIR/api-token, readable by the server's
# owner only) is the host operator's: the CLI's, with every right. It is no agent.
HOST = User(agent_id="", role="admin", nonce="host-token")
PRINCIPAL = web.RequestKey("api_principal", User)
API_TOKENS = web.AppKey("api_tokens", ApiTokenStore)


def api_principal(request: web.Request) -> User:
    """Who the guard let in: only /api handlers behind ``api_guard`` ask."""
    return request[PRINCIPAL]


def check_acting_for(request: web.Request, agent_id: str) -> None:
    """Refuses (403) a request for ``agent_id`` by someone else who may not act for others."""
    user = api_principal(request)
    need = route_need(request.match_info.route.handler)
    if need is None or not need.allows_for(user, agent_id):
        raise DomainError(
            f"role {user.role} may act for its own agent only",
            error_id="forbidden",
            status=403,
        )


def client_address(request: web.Request, trusted_proxy: str | None) -> str:
    """The client's address: X-Forwarded-For's last hop from ``trusted_proxy`` only (from
    anyone else it is forged)."""
    remote = request.remote or "?"
    if trusted_proxy and remote == trusted_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        return forwarded[:64] or remote
    return remote


async def _principal(
    request: web.Request, host_token: Callable[[], str], trusted_proxy: str | None
) -> User | None:
    given = bearer(request.headers.get("Authorization"))
    if given is None:
        return None
    if hmac.compare_digest(given.encode("utf-8"), host_token().encode("utf-8")):
        return HOST  # no database needed: the CLI works while it is away
    tokens = request.app.get(API_TOKENS)
    if tokens is None:
        return None
    now = datetime.now(UTC)
    found = await tokens.resolve(given, now, client_address(request, trusted_proxy))
    if found is None:
        return None
    return User(found.agent_id, found.role, f"api-token:{found.token_id}")


def api_guard(token: Callable[[], str], trusted_proxy: str | None = None) -> Middleware:
    """Bearer tokens on /api (its description, /api/openapi.json, is public): ``token()`` is
    the host's; per-user ones are resolved through the app's ``API_TOKENS`` store when it has
    one. 401 for no or a wrong, expired or revoked token; 403 when the role may not."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path == "/api/openapi.json":
            return await handler(request)
        user = await _principal(request, token, trusted_proxy)
        if user is None:
            return error_json(401, "unauthorized", "missing or wrong API token")
        match = request.match_info
        if match.http_exception is not None:  # no such route (404/405): after the token
            return await handler(request)
        need = route_need(match.route.handler)
        if need is None:
            log.error("api_route_without_action", path=request.path)
            return error_json(403, "forbidden", "this route declares no action")
        if not may(user.role, need.action):
            return error_json(403, "forbidden", f"role {user.role} may not {need.action}")
        agent_id = match.get("agent_id")
        if agent_id is not None and not need.allows_for(user, agent_id):
            return error_json(403, "forbidden", f"role {user.role} may act for its own agent only")
        request[PRINCIPAL] = user
        return await handler(request)

    return guard
