"""The one place an error becomes an HTTP answer, for every route (pages, /desk/api, /api):
any ``DomainError`` is ``{"error_id", "message", "details"}`` JSON with its status (a form
error also names its ``field`` at the top, as the desk's API always did); a failed upstream
(Asterisk) is 503 when it is unavailable, else 502. And the bearer token of /api."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from core.errors import DomainError, UpstreamError
from models.db import is_outage

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
    if header is None or not header.startswith("Bearer "):
        return False
    try:
        given = header.removeprefix("Bearer ").encode("utf-8")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, token.encode("utf-8"))


def api_guard(token: Callable[[], str]) -> Middleware:
    """Bearer ``token()`` on /api (its description, /api/openapi.json, is public)."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = request.path.startswith("/api/") and request.path != "/api/openapi.json"
        if guarded and not bearer_ok(request.headers.get("Authorization"), token()):
            return error_json(401, "unauthorized", "missing or wrong API token")
        return await handler(request)

    return guard
