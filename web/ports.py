"""What the web layer calls on the Stasis apps, as small Protocols: ``centrala serve`` injects
the real objects (``ari_app.agents.AgentDesk``, ``ari_app.infoline.InfolineApp``) under the
keys below, and the web layer never imports them. A fake with these members serves a test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from core.acd import AgentMode, Offer
from core.softphone import WebCredentials


class DeskNotice(Protocol):
    """News for the desk: ``kind`` offered | connected | ended | missed; ``at`` wall clock."""

    @property
    def kind(self) -> str: ...
    @property
    def call_id(self) -> str: ...
    @property
    def agent_id(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def facts(self) -> Mapping[str, Any] | None: ...


class AgentCommands(Protocol):
    """The agents' phones and states (``AgentDesk``); raises ``AgentDeskError``."""

    async def login(self, agent_id: str, endpoint: str | None, mode: AgentMode) -> None: ...
    async def logout(self, agent_id: str) -> None: ...
    def pause(self, agent_id: str, reason: str) -> None: ...
    def ready(self, agent_id: str) -> None: ...
    def publish(self, offers: list[Offer]) -> None: ...


class LiveCall(Protocol):
    @property
    def agent_id(self) -> str | None: ...
    @property
    def flow_version(self) -> int: ...
    @property
    def ivr_node(self) -> str | None: ...


class CallControl(Protocol):
    """The info line's live calls (``InfolineApp``); raises ``CallControlError``."""

    @property
    def calls(self) -> Mapping[str, LiveCall]: ...
    @property
    def by_call(self) -> Mapping[str, str]: ...
    @property
    def desk_listeners(self) -> list[Callable[[Any], None]]: ...
    async def control(self, call_id: str, op: str, target: str | None = None) -> None: ...


class PlacedCall(Protocol):
    @property
    def call_id(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def presented(self) -> str: ...
    @property
    def queue(self) -> str | None: ...


class ManualCalls(Protocol):
    """Agents' manual outbound calls (``OutboundApp``); raises ``OutboundRefused``."""

    async def call_from_desk(
        self,
        agent_id: str,
        *,
        number: str | None = None,
        client_id: int | None = None,
        callback_id: int | None = None,
        queue: str | None = None,
    ) -> PlacedCall: ...


class Softphones(Protocol):
    """Agents' browser softphones (``ari_app.softphones.Softphones``); raises
    ``AgentDeskError``."""

    async def issue(self, agent_id: str) -> WebCredentials: ...
    async def remove(self, agent_id: str) -> None: ...
    async def dial(self, agent_id: str) -> str | None: ...


class AgentCampaigns(Protocol):
    """The agent dialler (``ari_app.dialler.engine.AgentDialler``): preview's contact on an
    agent's desk, and the calls under way; raises ``PreviewError``."""

    async def preview_next(self, agent_id: str) -> Any: ...
    async def preview_call(self, agent_id: str, contact_id: int) -> Any: ...
    async def preview_skip(self, agent_id: str, contact_id: int, reason: str) -> None: ...
    def live(self) -> list[dict[str, Any]]: ...
    def figures(self) -> list[dict[str, Any]]: ...


DESK: web.AppKey[AgentCommands] = web.AppKey("desk")
SOFTPHONES: web.AppKey[Softphones] = web.AppKey("softphones")
INFOLINE: web.AppKey[CallControl] = web.AppKey("infoline")
OUTBOUND: web.AppKey[ManualCalls] = web.AppKey("outbound")
AGENT_DIALLER: web.AppKey[AgentCampaigns] = web.AppKey("agent_dialler")
# Synthesises a flow's prompts and puts them where Asterisk plays them (centrala.service);
# raises a DomainError when it cannot. Absent: prompts are built by hand (`prompts build`).
PROMPTS: web.AppKey[Callable[[Any], Awaitable[None]]] = web.AppKey("prompts")
# Checks an uploaded prompt recording (bytes, prompt, language), converts it to what
# Asterisk plays and installs it; its media URI. Raises a DomainError for a bad file.
PROMPT_UPLOAD: web.AppKey[Callable[[bytes, str, str], Awaitable[str]]] = web.AppKey("prompt_upload")
