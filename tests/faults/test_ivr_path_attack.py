"""Issue 10: a caller pressing keys for long stored every step in the call's ``ivr_path``
(10 000 keys stored 30 007 entries in one row). On the real Asterisk and `centrala serve`: a
caller walking a menu back to itself over a hundred times leaves a row of at most
``MAX_RECORDED_PATH`` entries, the way in and the latest steps kept, a marker between."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from core.ivr import MAX_RECORDED_PATH, RECORDED_PATH_HEAD
from dialplan.model import Flow
from models.flows import apply_flow
from models.tables import Call, CallEvent
from tests.integration.conftest import (  # noqa: F401  (the integration fixtures, used here)
    Callers,
    Server,
    callers,
    no_leftovers,
    pbx,
    server,
)
from tests.support import wait_until

FLOW: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parents[2] / "dialplan" / "infoline.yaml").read_text()
)
KEYS = 120  # each "7" stores two steps (the key, the menu again): well over the cap


def menu_back_to_itself() -> Flow:
    data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(FLOW))
    for queue in data["queues"].values():  # not on the time of day
        queue["calendar"] = "always"
    data["nodes"]["main_menu"]["options"]["7"] = "main_menu"
    return Flow.model_validate(data)


async def test_ivr_path_of_a_caller_pressing_keys_for_long_is_capped(
    server: Server,  # noqa: F811
    callers: Callers,  # noqa: F811
) -> None:
    await apply_flow(server.db.sessions, menu_back_to_itself())
    try:
        call = await callers.place(caller_id='"Keys" <+38761999170>')
        await call.wait_for("StasisStart")
        # Keys typed ahead skip the notice and greeting; then "7" a hundred and twenty times
        # at the menu, and "2" (my loan) to a queue, so the queued row shows they all arrived.
        await callers.ari.request(
            "POST",
            f"/channels/{call.id}/dtmf",
            params={"dtmf": "7" * KEYS + "2", "between": 60, "duration": 90},
        )

        async def queued() -> Call | None:
            async with server.db.sessions() as session:
                row = await session.scalar(select(Call).where(Call.channel_id == call.far_end))
                if row is None:
                    return None
                kinds = await session.scalars(
                    select(CallEvent.kind).where(CallEvent.call_id == row.id)
                )
                return row if "queued" in list(kinds) else None

        await wait_until(queued, timeout=90, message="the caller queued after the keys")
        await call.hangup()
        row = await server.wait_closed(call.far_end)
    finally:
        await apply_flow(server.db.sessions, Flow.model_validate(FLOW))

    path = row.ivr_path
    assert len(path) == MAX_RECORDED_PATH
    assert path[:3] == ["notice", "language", "who"]  # the way in
    marker = re.fullmatch(r"…(\d+) skipped…", path[RECORDED_PATH_HEAD])
    assert marker is not None, path[RECORDED_PATH_HEAD - 2 : RECORDED_PATH_HEAD + 2]
    assert int(marker.group(1)) >= 2 * KEYS - MAX_RECORDED_PATH  # every key was walked
    assert path[-3:] == ["main_menu", "main_menu:2", "my_loan"]  # the latest
    assert all(step in ("main_menu", "main_menu:7") for step in path[-60:-3])
