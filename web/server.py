"""The web port's defences against clients that connect and then dawdle (slow-loris): a
deadline for a request's headers, one for its body, and a cap on open connections, so idle
sockets cannot eat the process's file descriptors (which the calls need too).

aiohttp closes a connection that sits ``keepalive_timeout`` seconds without a complete
request, from the moment it is accepted and between requests, however many header bytes
trickle in meanwhile: that is the header deadline (``handler_args``; verified on aiohttp
3.14, and pinned by tests/faults/test_web_attacks.py since it rests on aiohttp's internals,
as the cap's view of a handler does). The body deadline is a
middleware that reads the body under a timeout before the handler sees it. The cap is a
site whose protocol factory refuses a connection over the cap, after first making room by
closing the longest-idle connection (one waiting for its request), so a flood of idle
sockets evicts itself and a real request still gets through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp.web_protocol import RequestHandler

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def handler_args(header_timeout: float) -> dict[str, Any]:
    """Keyword arguments of ``web.AppRunner`` (it hands them to every request handler):
    the header deadline (see module doc)."""
    return {"keepalive_timeout": header_timeout}


def body_deadline(timeout: float) -> Middleware:
    """A request body not fully received within ``timeout`` seconds is answered 408 and the
    connection closed. The body is read here (at most the app's client_max_size) and kept by
    aiohttp, so the handler's ``post()``/``json()``/``read()`` reads it from memory. A
    multipart body could not be read twice (aiohttp parses it from the stream): no route
    takes one, so it is refused with 415 before anything is read."""

    @web.middleware
    async def deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.body_exists and request.headers.get("Upgrade", "").lower() != "websocket":
            if request.content_type.startswith("multipart/"):
                return web.json_response(
                    {
                        "error_id": "multipart_not_accepted",
                        "message": "send a form as application/x-www-form-urlencoded or JSON",
                    },
                    status=415,
                )
            try:
                async with asyncio.timeout(timeout):
                    await request.read()
            except TimeoutError:
                log.warning("request_body_timeout", path=request.path, peer=request.remote)
                response = web.json_response(
                    {"error_id": "body_timeout", "message": "request body too slow"},
                    status=408,
                )
                response.force_close()
                return response
        return await handler(request)

    return deadline


class _Refused(asyncio.Protocol):
    """Answers a connection over the cap by closing it at once."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _idle(handler: RequestHandler) -> bool:
    # Waiting for (the rest of) a request's headers: nothing of ours is in progress.
    return not handler._request_in_progress and handler._task_handler is not None


class CappedSite(web.TCPSite):
    """A TCP site that holds at most ``max_connections`` open connections."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int
    ) -> None:
        super().__init__(runner, host, port)
        self.max_connections = max_connections
        self.refused = 0

    async def start(self) -> None:
        # TCPSite.start registers the site and creates the server with the runner's server
        # as protocol factory; ours goes in its place.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None

        # Every handler we made, in accept order. Not server.connections: a connection
        # accepted in the same burst is listed there only after its connection_made, and one
        # closed a moment ago until its connection_lost.
        # (The value: when it was made; one never connected after a while is gone too, as
        # when asyncio failed to set the accepted socket up.)
        handlers: dict[RequestHandler, float] = {}
        loop = asyncio.get_running_loop()

        def gone(handler: RequestHandler, now: float) -> bool:
            if handler._manager is None:  # its connection_lost ran
                return True
            return handler._task_handler is None and now - handlers[handler] > 10.0

        def protocol() -> asyncio.Protocol:
            now = loop.time()
            for handler in [h for h in handlers if gone(h, now)]:
                del handlers[handler]
            open_ = [h for h in handlers if not h._force_close]
            excess = len(open_) + 1 - self.max_connections
            if excess > 0:
                idle = [h for h in open_ if _idle(h)][:excess]  # the oldest first
                for handler in idle:
                    handler.force_close()
                if len(idle) < excess:
                    self.refused += 1
                    if self.refused in (1, 10, 100) or self.refused % 1000 == 0:
                        log.warning(
                            "web_connection_refused",
                            cap=self.max_connections,
                            refused=self.refused,
                        )
                    return _Refused()
            handler = server()
            handlers[handler] = now
            return handler

        self._server = await loop.create_server(
            protocol,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
