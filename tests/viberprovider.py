"""A stand-in for Infobip's Viber Business Messages API for the tests: an aiohttp server run
as its own process on a free loopback port (as ``tests/smsc.py`` runs our SMSC).

``POST /viber/2/messages`` wants ``Authorization: App <key>`` (else 401) and the documented
body (``messages[]`` with ``sender``, ``destinations[]`` of ``to`` in international form
without "+" and ``messageId``, ``content`` of ``type`` TEXT and its ``text``, an
``options.validityPeriod``; else 400), answered in Infobip's error shape (``errorCode``,
``description``, ``violations``). Each message taken or refused is a line of
``messages.jsonl``. What happens to it is its destination's last digit's scenario:

    1  delivered: a DELIVERED report to its webhook
    2  rejected at sending: 400, the message refused
    3  undeliverable: an UNDELIVERABLE report
    4  silent: taken, and no report ever
    5  the provider in trouble: 503
    6  expired: an EXPIRED report (the validity over, not delivered)
    else delivered

Each report posted, with the answer the webhook gave, is a line of ``reports.jsonl``.

    python -m tests.viberprovider --port P --dir D --api-key KEY
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support import ServerProcess, free_port

DELIVERED, REJECTED, UNDELIVERABLE, SILENT, TROUBLE, EXPIRED = "1", "2", "3", "4", "5", "6"
STATUS = {
    "PENDING": {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED",
                "description": "Message sent to next instance"},
    "DELIVERED": {"groupId": 3, "groupName": "DELIVERED", "id": 5,
                  "name": "DELIVERED_TO_HANDSET", "description": "Message delivered to handset"},
    "EXPIRED": {"groupId": 4, "groupName": "EXPIRED", "id": 15, "name": "EXPIRED_EXPIRED",
                "description": "Message expired"},
    "UNDELIVERABLE": {"groupId": 2, "groupName": "UNDELIVERABLE", "id": 9,
                      "name": "UNDELIVERABLE_NOT_DELIVERED",
                      "description": "Message sent not delivered"},
}  # fmt: skip


def violations(body: Any) -> list[dict[str, str]]:
    """What is wrong with a send request's body (Infobip's property paths)."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return [{"property": "messages", "violation": "must not be empty"}]
    found = []
    for i, m in enumerate(body["messages"]):
        at = f"messages[{i}]"
        if not isinstance(m, dict):
            found.append({"property": at, "violation": "must be an object"})
            continue
        if not isinstance(m.get("sender"), str) or not m["sender"]:
            found.append({"property": f"{at}.sender", "violation": "must not be blank"})
        destinations = m.get("destinations")
        if not isinstance(destinations, list) or not destinations:
            found.append({"property": f"{at}.destinations", "violation": "must not be empty"})
        else:
            for j, d in enumerate(destinations):
                to = d.get("to") if isinstance(d, dict) else None
                if not isinstance(to, str) or not to.isdigit():
                    found.append(
                        {"property": f"{at}.destinations[{j}].to", "violation": "invalid number"}
                    )
        content = m.get("content")
        if (
            not isinstance(content, dict)
            or content.get("type") != "TEXT"
            or not isinstance(content.get("text"), str)
            or not content["text"]
        ):
            found.append({"property": f"{at}.content", "violation": "a TEXT with its text"})
        validity = (m.get("options") or {}).get("validityPeriod")
        if (
            not isinstance(validity, dict)
            or not isinstance(validity.get("amount"), int)
            or validity.get("timeUnit") not in ("SECONDS", "MINUTES", "HOURS")
        ):
            found.append(
                {"property": f"{at}.options.validityPeriod", "violation": "amount and timeUnit"}
            )
    return found


def error(status: int, code: str, description: str, found: list[dict[str, str]]) -> web.Response:
    body = {"errorCode": code, "description": description, "action": "", "violations": found,
            "resources": []}  # fmt: skip
    return web.json_response(body, status=status)


def app(directory: Path, api_key: str) -> web.Application:
    tasks: set[asyncio.Task[None]] = set()

    def record(name: str, line: dict[str, Any]) -> None:
        with open(directory / name, "a") as f:
            f.write(json.dumps(line) + "\n")

    async def report(url: str, result: dict[str, Any]) -> None:
        body = {"results": [result]}
        try:
            async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
                answer: Any = resp.status
        except aiohttp.ClientError as exc:
            answer = repr(exc)
        record("reports.jsonl", {"url": url, "body": body, "answer": answer})

    async def send(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"App {api_key}":
            return error(401, "E401", "Invalid login details", [])
        try:
            body = await request.json()
        except ValueError:
            body = None
        found = violations(body)
        if found:
            record("messages.jsonl", {"refused": found, "body": body})
            return error(400, "E400", "Request cannot be processed.", found)
        answered = []
        for m in body["messages"]:
            for d in m["destinations"]:
                scenario = d["to"][-1]
                line = {"message": m, "to": d["to"], "messageId": d.get("messageId"),
                        "scenario": scenario}  # fmt: skip
                record("messages.jsonl", line)
                if scenario == TROUBLE:
                    return error(503, "E503", "Service unavailable", [])
                if scenario == REJECTED:
                    rule = {"property": "messages[0].destinations[0].to",
                            "violation": "not a Viber user"}  # fmt: skip
                    return error(400, "E400", "Request cannot be processed.", [rule])
                message_id = d.get("messageId") or str(uuid.uuid4())
                answered.append(
                    {"messageId": message_id, "status": STATUS["PENDING"], "destination": d["to"]}
                )
                url = ((m.get("webhooks") or {}).get("delivery") or {}).get("url")
                if url and scenario != SILENT:
                    group = {UNDELIVERABLE: "UNDELIVERABLE", EXPIRED: "EXPIRED"}.get(
                        scenario, "DELIVERED"
                    )
                    result = {
                        "bulkId": "bulk-1",
                        "messageId": message_id,
                        "to": d["to"],
                        "sentAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                        + "+0000",
                        "doneAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
                        + "+0000",
                        "messageCount": 1,
                        "status": STATUS[group],
                        "error": {"groupId": 0, "groupName": "OK", "id": 0, "name": "NO_ERROR",
                                  "description": "No Error", "permanent": False}
                        if group == "DELIVERED"
                        else {"groupId": 1, "groupName": "HANDSET_ERRORS", "id": 27,
                              "name": "EC_ABSENT_SUBSCRIBER", "description": "Not a Viber user",
                              "permanent": True},
                    }  # fmt: skip
                    task = asyncio.create_task(report(url, result))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
        return web.json_response({"bulkId": "bulk-1", "messages": answered})

    application = web.Application()
    application.router.add_post("/viber/2/messages", send)
    return application


class ViberProvider(ServerProcess):
    """The test's handle on the stand-in: start, stop, what it took, what it reported."""

    def __init__(self, directory: Path, api_key: str = "test-infobip-key") -> None:
        self.directory = directory
        self.api_key = api_key
        self.port = free_port()
        argv = [sys.executable, "-m", "tests.viberprovider", "--port", str(self.port),
                "--dir", str(directory), "--api-key", api_key]  # fmt: skip
        super().__init__(argv, self.port, directory / "provider.log", "the Viber provider")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _lines(self, name: str) -> list[dict[str, Any]]:
        path = self.directory / name
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def messages(self) -> list[dict[str, Any]]:
        """Every message asked for (taken or refused), oldest first."""
        return self._lines("messages.jsonl")

    def reports(self) -> list[dict[str, Any]]:
        """Every delivery report posted, with the webhook's answer."""
        return self._lines("reports.jsonl")

    def env(self) -> dict[str, str]:
        """The settings that send Viber through this stand-in."""
        return {"CENTRALA_VIBER_BASE_URL": self.url, "CENTRALA_VIBER_API_KEY": self.api_key}


def main() -> None:
    parser = argparse.ArgumentParser(description="the tests' stand-in for Infobip's Viber API")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    web.run_app(app(directory, args.api_key), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
