"""Agents' browser softphones in Asterisk (core/softphone.py decides their shape): a desk
session asks for credentials, a fresh password is made, its digest goes into Asterisk through
ARI's dynamic configuration (like ari_app/phones.py) and the password goes back to that one
browser; nothing is stored. A new request replaces the agent's last credential at once; the
desk's log-out removes the endpoint. Asterisk forgets them when it restarts: the browser's next
REGISTER is refused and the desk asks for new credentials (desk.js)."""

from __future__ import annotations

import contextlib
import secrets
from urllib.parse import quote

import structlog

from ari_app.ari import ARIClient, ARIError, ARINotFound
from core.errors import AgentDeskError
from core.sip import phone_digest
from core.softphone import (
    WebCredentials,
    check_web_endpoint,
    offer_dial,
    web_credentials,
    web_endpoint,
    web_phone_objects,
)

log = structlog.get_logger(__name__)
CONFIG_CLASS = "res_pjsip"


class Softphones:
    def __init__(self, ari: ARIClient, *, realm: str, ws_url: str) -> None:
        self.ari = ari
        self.realm = realm
        self.ws_url = ws_url

    async def issue(self, agent_id: str) -> WebCredentials:
        """New credentials for the agent's browser; the previous ones stop working now."""
        problem = check_web_endpoint(agent_id)
        if problem is not None:
            raise AgentDeskError("no_softphone", problem, 422)
        endpoint = web_endpoint(agent_id)
        password = secrets.token_urlsafe(24)
        digest = phone_digest(endpoint, self.realm, password)
        try:
            for obj in web_phone_objects(endpoint, digest, self.realm):
                await self.ari.put_config(CONFIG_CLASS, obj.type, obj.id, list(obj.fields))
        except ARIError as exc:
            log.error("softphone_not_pushed", agent_id=agent_id, error=str(exc))
            raise AgentDeskError(
                "pbx_unavailable", "the PBX did not take the softphone", 503
            ) from exc
        log.info("softphone_issued", agent_id=agent_id, endpoint=endpoint)
        return web_credentials(agent_id, password, self.realm, self.ws_url)

    async def remove(self, agent_id: str) -> None:
        """Take the agent's web endpoint away (log-out): its registration and password go."""
        if check_web_endpoint(agent_id) is not None:
            return
        endpoint = web_endpoint(agent_id)
        # The endpoint first: from then on no call reaches the browser, nor may it register.
        for object_type in ("endpoint", "aor", "auth"):
            with contextlib.suppress(ARINotFound):
                await self.ari.delete_config(CONFIG_CLASS, object_type, endpoint)
        log.info("softphone_removed", agent_id=agent_id, endpoint=endpoint)

    async def registered(self, agent_id: str) -> bool:
        """Whether the agent's browser is registered now (Asterisk's endpoint state)."""
        if check_web_endpoint(agent_id) is not None:
            return False
        path = f"/endpoints/PJSIP/{quote(web_endpoint(agent_id), safe='')}"
        try:
            found = await self.ari.request("GET", path)
        except ARINotFound:
            return False
        return isinstance(found, dict) and found.get("state") == "online"

    async def dial(self, agent_id: str) -> str | None:
        """The dial string to log the agent in with (None: their phone on file). Asterisk
        away: the phone on file, the log-in itself then says what is wrong."""
        try:
            return offer_dial(agent_id, await self.registered(agent_id))
        except ARIError as exc:
            log.warning("softphone_state_unknown", agent_id=agent_id, error=str(exc))
            return None
