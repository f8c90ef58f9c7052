"""The info line of every node one instance owns (``CENTRALA_SITE``), as one: one
``InfolineApp`` per node (each on its node's ARI, adopting and closing its node's calls),
sharing the instance's ACD, agent desk and desk notices, so a caller on any node waits for the
same agents. The web layer's ``CallControl`` sees them as one app through ``SiteCalls``."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

from ari_app.infoline.session import CallerSession
from ari_app.infoline.stasis import InfolineApp
from core.errors import CallControlError


def join_site(home: InfolineApp, other: InfolineApp, node: str) -> None:
    """``other`` (on ``node``) reports to the desk through ``home``'s notices, so the desk
    and the agent dialler hear one info line."""
    other.node = node
    other.desk.node_calls[node] = other.calls
    other.notifier = home.notifier
    other.desk_listeners = home.notifier.listeners
    other.queue_listeners = home.queue_listeners


class SiteCalls:
    """Several nodes' info lines as the one the desk controls (``web.ports.CallControl``):
    their live calls together, a control sent to the node whose app holds the call."""

    def __init__(self, apps: list[InfolineApp]) -> None:
        self.apps = apps

    @property
    def calls(self) -> Mapping[str, CallerSession]:
        return ChainMap(*(app.calls for app in self.apps))

    @property
    def by_call(self) -> Mapping[str, str]:
        return ChainMap(*(app.by_call for app in self.apps))

    @property
    def ready(self) -> bool:
        """Every node's calls adopted (/status)."""
        return all(app.ready for app in self.apps)

    @property
    def adopted(self) -> int:
        return sum(app.adopted for app in self.apps)

    @property
    def desk_listeners(self) -> list[Callable[[Any], None]]:
        return self.apps[0].desk_listeners  # shared (join_site)

    async def control(self, call_id: str, op: str, target: str | None = None) -> None:
        holder = next((app for app in self.apps if call_id in app.by_call), None)
        if holder is None:
            # The first app answers the bad operation or the unknown call, as alone.
            await self.apps[0].control(call_id, op, target)
            raise CallControlError("unknown_call", f"no live call {call_id!r}", 404)
        await holder.control(call_id, op, target)
