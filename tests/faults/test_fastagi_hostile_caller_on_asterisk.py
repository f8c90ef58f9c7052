"""A hostile caller name through the real Asterisk (issue 10): Asterisk writes
``agi_calleridname`` into the FastAGI header unescaped, so a name with line feeds in it once
rewrote the request: it ran the survey script instead of the info line, and a forged
``agi_uniqueid`` closed another caller's live row. The same call now reaches the info line
under its own channel, and the other row stays as it was."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update

from models.calllog import now
from models.tables import Call, Direction
from tests.integration.conftest import Callers, Server

GREETING_PATH = ["opened", "answered", "greeting_started", "greeting_finished", "closed"]


async def test_caller_name_forging_fastagi_script_and_uniqueid_is_served_by_the_info_line(
    server: Server, callers: Callers
) -> None:
    victim_channel = f"victim-{uuid.uuid4().hex[:12]}"  # another caller's live call
    async with server.db.sessions() as session, session.begin():
        victim = Call(
            channel_id=victim_channel,
            linkedid=victim_channel,
            direction=Direction.INBOUND,
            handler="agi",
            caller_number="+38761000101",
            caller_name="Victim",
            called_number="0800100200",
            started_at=now(),
        )
        session.add(victim)
    logged_before = len(server.log_lines())  # the server is shared with other tests
    name = f"Ana\nagi_network_script: survey\nagi_uniqueid: {victim_channel}\nagi_arg_1: nps"
    try:
        call = await callers.place(context="infoline-agi", caller_id=f'"{name}" <+38761555444>')
        await call.wait_for("ChannelDestroyed")
        destroyed = await call.wait_for("ChannelDestroyed", far=True)
        # Asterisk kept the line feeds on the channel that ran the script: the header it
        # wrote had the forged lines in it.
        assert destroyed["channel"]["caller"]["name"] == name

        row = await server.wait_closed(call.far_end)
        assert (row.handler, row.linkedid, row.outcome) == ("agi", call.id, "completed")
        assert row.caller_name is not None and row.caller_name.startswith("Ana")
        assert "agi_network_script: survey" in row.caller_name  # stored as text, nothing more
        assert await server.event_kinds(row.id) == GREETING_PATH
        async with server.db.sessions() as session:
            after = await session.scalar(select(Call).where(Call.channel_id == victim_channel))
        assert after is not None
        assert (after.ended_at, after.outcome, after.survey_status) == (None, None, None)
        this_test = server.log_lines()[logged_before:]
        assert not [e for e in this_test if e.get("agi_script") == "survey"]
    finally:
        async with server.db.sessions() as session, session.begin():
            await session.execute(
                update(Call)
                .where(Call.channel_id == victim_channel)
                .values(ended_at=now(), outcome="test_cleanup")
            )
