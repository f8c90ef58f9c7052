"""Agents' phones into Asterisk through ARI's dynamic configuration (sorcery.conf keeps
res_pjsip's endpoints, aors and auths in memory besides pjsip.conf's): the database is the one
source. Asterisk forgets them when it restarts, and it restarting is an ARI reconnect, so every
(re)connect pushes them all again (``reconcile``); a change pushes the one phone at once; and
``sync``, every few seconds, brings in what others changed (another instance, for its node, or
the CLI): with several nodes a phone may register with any of them."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import structlog

from ari_app.ari import ARIClient, ARIError, ARINotFound
from core.sip import MediaEncryption, phone_objects
from models.phones import Phone

log = structlog.get_logger(__name__)
CONFIG_CLASS = "res_pjsip"


class PhonePusher:
    def __init__(
        self,
        ari: ARIClient,
        phones: Callable[[], Awaitable[list[Phone]]],
        *,
        realm: str,
        codecs: list[str],
        media_encryption: MediaEncryption = "none",
    ) -> None:
        self.ari = ari
        self.phones = phones
        self.realm = realm
        self.codecs = codecs
        self.media_encryption: MediaEncryption = media_encryption
        self.pushed = 0
        self._known: dict[str, Phone] = {}  # what Asterisk has from us, by endpoint

    async def push(self, phone: Phone) -> None:
        for obj in phone_objects(
            phone.endpoint, phone.password_digest, self.realm, self.codecs, self.media_encryption
        ):
            await self.ari.put_config(CONFIG_CLASS, obj.type, obj.id, list(obj.fields))
        self._known[phone.endpoint] = phone

    async def remove(self, endpoint: str) -> None:
        # The endpoint first: from then on no call reaches the phone, nor may it register.
        for object_type in ("endpoint", "aor", "auth"):
            with contextlib.suppress(ARINotFound):
                await self.ari.delete_config(CONFIG_CLASS, object_type, endpoint)
        self._known.pop(endpoint, None)

    async def sync(self) -> None:
        """The phones made, reset or removed since the last look, into Asterisk (after a
        connect's ``reconcile``: until then Asterisk may have none of them)."""
        if not self.ari.connected:
            return  # the connect's reconcile pushes them all
        now = {p.endpoint: p for p in await self.phones() if p.realm == self.realm}
        changed = [p for endpoint, p in now.items() if self._known.get(endpoint) != p]
        gone = sorted(set(self._known) - set(now))
        for phone in changed:
            await self.push(phone)
        for endpoint in gone:
            await self.remove(endpoint)
        if changed or gone:
            log.info("phones_synced", pushed=len(changed), removed=len(gone))

    async def reconcile(self) -> None:
        """Every agent's phone into Asterisk (after a connect: it may have restarted)."""
        self._known = {}  # a restarted Asterisk has none of them
        try:
            phones = await self.phones()
        except Exception:  # the database away: the next connect tries again
            log.exception("phones_not_read")
            return
        pushed = 0
        for phone in phones:
            if phone.realm != self.realm:
                # The digest proves user:realm:password; under another realm it proves nothing.
                log.error(
                    "phone_realm_changed",
                    agent_id=phone.agent_id,
                    realm=phone.realm,
                    expected=self.realm,
                    fix="centrala agent phone AGENT (new credentials)",
                )
                continue
            try:
                await self.push(phone)
            except ARIError as exc:
                log.error("phone_not_pushed", agent_id=phone.agent_id, error=str(exc))
                continue
            pushed += 1
        self.pushed = pushed
        log.info("phones_pushed", phones=pushed)
