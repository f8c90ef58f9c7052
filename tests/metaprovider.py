"""A stand-in for Meta's Graph API Send API for the tests: an aiohttp server run as its own
process on a free loopback port (as ``tests/viberprovider.py`` is Infobip's).

``POST /{version}/{page}/messages`` (``version`` like ``v21.0``, ``page`` ``me`` or digits)
wants the Page access token in the ``access_token`` query parameter (else 400, code 190,
``OAuthException``), and, when the stand-in has the app secret, ``appsecret_proof`` its
HMAC-SHA256 of the token (else 400, code 100), and the documented body: ``recipient.id``,
``messaging_type`` ``RESPONSE``/``UPDATE``/``MESSAGE_TAG``, ``message.text`` of 1 to 2000
characters (UTF-16 units); else 400, code 100. Answers are Meta's shapes: ``{"recipient_id",
"message_id"}`` or ``{"error": {"message", "type", "code", "error_subcode",
"fbtrace_id"}}``. Each request is a line of ``messages.jsonl`` (never the token). What
happens to a message is its recipient id's last digit's scenario:

    1  taken
    2  the standard window closed: 400, code 10, subcode 2018278
    3  rate-limited: 400, code 613 ("Calls to this api have exceeded the rate limit")
    4  too many requests: 429, code 4 ("Application request limit reached")
    5  Meta in trouble: 500, code 2 ("An unexpected error has occurred")
    6  the person unavailable: 400, code 551
    7  no answer ever (the client's timeout)
    8  its second message answered 500, the others taken (a reply cut short, then resumed)
    else taken

    python -m tests.metaprovider --port P --dir D --page-token TOKEN [--app-secret S]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import re
import sys
import uuid
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support import ServerProcess, free_port

TAKEN, WINDOW, RATE, TOO_MANY, TROUBLE, UNAVAILABLE, SILENT, CUT_SHORT = "12345678"
PATH = re.compile(r"^/v[0-9]+\.[0-9]+/(me|[0-9]+)/messages$")


def error(status: int, code: int, message: str, subcode: int | None = None) -> web.Response:
    body: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "A" + uuid.uuid4().hex[:10],
    }
    if subcode is not None:
        body["error_subcode"] = subcode
    return web.json_response({"error": body}, status=status)


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def invalid(body: Any) -> str | None:
    """What is wrong with a send request's body, in Meta's words; None: nothing."""
    if not isinstance(body, dict):
        return "(#100) The parameter recipient is required"
    recipient = body.get("recipient")
    if not isinstance(recipient, dict) or not isinstance(recipient.get("id"), str):
        return "(#100) The parameter recipient is required"
    if body.get("messaging_type") not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        return "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}"
    message = body.get("message")
    text = message.get("text") if isinstance(message, dict) else None
    if not isinstance(text, str) or not text:
        return "(#100) The parameter message[text] is required"
    if utf16_units(text) > 2000:
        return "(#100) Length of param message[text] must be less than or equal to 2000"
    return None


def app(directory: Path, page_token: str, app_secret: str | None) -> web.Application:
    sent_to: dict[str, int] = {}

    def record(line: dict[str, Any]) -> None:
        with open(directory / "messages.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    async def send(request: web.Request) -> web.Response:
        if not PATH.match(request.path):
            return error(400, 100, "Unknown path components")
        try:
            body = await request.json()
        except ValueError:
            body = None
        line: dict[str, Any] = {"path": request.path, "body": body}
        if request.query.get("access_token") != page_token:
            record({**line, "refused": "token"})
            return error(400, 190, "Invalid OAuth access token - Cannot parse access token")
        if app_secret is not None:
            proof = hmac.new(app_secret.encode(), page_token.encode(), hashlib.sha256)
            if request.query.get("appsecret_proof") != proof.hexdigest():
                record({**line, "refused": "appsecret_proof"})
                return error(400, 100, "Invalid appsecret_proof provided in the API argument")
        wrong = invalid(body)
        if wrong:
            record({**line, "refused": wrong})
            return error(400, 100, wrong)
        recipient = body["recipient"]["id"]
        scenario = recipient[-1:]
        earlier = sent_to.get(recipient, 0)
        sent_to[recipient] = earlier + 1
        record({**line, "scenario": scenario, "text": body["message"]["text"]})
        if scenario == WINDOW:
            return error(400, 10, "(#10) This message is sent outside of allowed window.", 2018278)
        if scenario == RATE:
            return error(400, 613, "Calls to this api have exceeded the rate limit.")
        if scenario == TOO_MANY:
            return error(429, 4, "(#4) Application request limit reached")
        if scenario == TROUBLE or (scenario == CUT_SHORT and earlier == 1):
            return error(500, 2, "An unexpected error has occurred. Please retry your request.")
        if scenario == UNAVAILABLE:
            return error(400, 551, "This person isn't available right now.", 1545041)
        if scenario == SILENT:
            await asyncio.Event().wait()  # until the client gives up and the server stops
        return web.json_response({"recipient_id": recipient, "message_id": "m_" + uuid.uuid4().hex})

    application = web.Application()
    application.router.add_post("/{tail:.*}", send)
    return application


class MetaProvider(ServerProcess):
    """The test's handle on the stand-in: start, stop, what it was asked."""

    def __init__(
        self,
        directory: Path,
        page_token: str = "test-page-token",
        app_secret: str | None = "test-app-secret",
    ) -> None:
        self.directory = directory
        self.page_token = page_token
        self.app_secret = app_secret
        self.port = free_port()
        argv = [sys.executable, "-m", "tests.metaprovider", "--port", str(self.port),
                "--dir", str(directory), "--page-token", page_token]  # fmt: skip
        if app_secret is not None:
            argv += ["--app-secret", app_secret]
        super().__init__(argv, self.port, directory / "provider.log", "the Graph API stand-in")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def messages(self) -> list[dict[str, Any]]:
        """Every send asked for (taken or refused), oldest first."""
        path = self.directory / "messages.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:
    parser = argparse.ArgumentParser(description="the tests' stand-in for Meta's Send API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--page-token", required=True)
    parser.add_argument("--app-secret")
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    web.run_app(
        app(directory, args.page_token, args.app_secret),
        host="127.0.0.1",
        port=args.port,
        print=None,
        # A silent answer's handler waits for ever: cancel it when its client gives up, and
        # do not wait for it to stop.
        handler_cancellation=True,
        shutdown_timeout=0.5,
    )


if __name__ == "__main__":
    main()
