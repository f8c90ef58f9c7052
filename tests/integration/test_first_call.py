"""The first call, logged: real calls through the real Asterisk into `centrala serve`, over
ARI (Stasis app) and over FastAGI, with the rows they leave on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from core.enums import ClientType
from models.tables import Call, Client, ClientPhone, Direction
from tests.integration.conftest import INFO_NUMBER, Callers, Server
from tests.support import wait_until

GREETING_PATH = ["opened", "answered", "greeting_started", "greeting_finished"]


async def add_client(server: Server, external_id: str, name: str, *numbers: str) -> int:
    async with server.db.sessions() as session:
        client = Client(
            external_id=external_id,
            name=name,
            client_type=ClientType.KEY,
            phones=[ClientPhone(number=n) for n in numbers],
        )
        session.add(client)
        await session.commit()
        return client.id


async def test_known_caller_over_ari_is_answered_identified_and_logged(
    server: Server, callers: Callers
) -> None:
    client_id = await add_client(server, "ARI-1", "Amra Hodžić", "+38761100200", "+38733111222")
    call = await callers.place(caller_id='"Amra" <061 100 200>')
    await call.wait_for("StasisStart")
    await call.prompt_started("recording_notice")  # hang up while it plays
    await call.hangup()

    row = await server.wait_closed(call.far_end)
    assert row.direction is Direction.INBOUND
    assert row.handler == "ari"
    assert row.caller_number == "061 100 200"
    assert row.caller_name == "Amra"
    assert row.called_number == INFO_NUMBER
    assert row.client_id == client_id  # national number matched the E.164 phone
    assert row.linkedid == call.id  # the call's first channel is the test's leg
    assert row.flow_version is not None
    assert row.answered_at is not None and row.ended_at is not None
    assert row.started_at <= row.answered_at <= row.ended_at
    # Normal clearing (16), as Asterisk reports it; on a loaded machine it has reported no
    # cause (0) for the far end of the test's Local channel when both halves went at once.
    assert row.hangup_cause in (16, 0)
    assert row.outcome == "abandoned_in_ivr"
    assert row.ivr_path[0] == "notice"
    kinds = await server.event_kinds(row.id)
    assert kinds == ["opened", "answered", "closed"]

    # Every log line of this call carries its id.
    lines = [entry for entry in server.log_lines() if entry.get("call_id") == row.id]
    assert {entry["event"] for entry in lines} >= {"call_started", "call_ended"}


async def test_hostile_caller_id_is_stored_cleaned_and_matches_nobody(
    server: Server, callers: Callers
) -> None:
    call = await callers.place(caller_id='"<script>\x07Robert\'); DROP TABLE calls;--" <12ab;34>')
    await call.wait_for("StasisStart")
    await call.hangup()

    row = await server.wait_closed(call.far_end)
    # Stored as data (bound parameters), control characters dropped; it matches nobody.
    assert row.caller_name == "<script>Robert'); DROP TABLE calls;--"
    assert row.caller_number == "12ab;34"
    assert row.client_id is None
    async with server.db.sessions() as session:
        assert await session.scalar(select(Call.id).where(Call.id == row.id)) == row.id


async def test_info_line_over_fastagi_is_logged_the_same_way(
    server: Server, callers: Callers
) -> None:
    client_id = await add_client(server, "AGI-1", "Mihai Popescu", "+40721000111")
    call = await callers.place(context="infoline-agi", caller_id='"Mihai" <+40 721 000 111>')
    await call.wait_for("ChannelDestroyed")

    row = await server.wait_closed(call.far_end)
    assert row.handler == "agi"
    assert row.direction is Direction.INBOUND
    assert row.client_id == client_id
    assert row.called_number == INFO_NUMBER
    assert row.linkedid == call.id
    assert row.answered_at is not None and row.started_at <= row.answered_at <= row.ended_at
    # Normal clearing (16), as Asterisk reports it; on a loaded machine it has reported no
    # cause (0) for the far end of the test's Local channel when both halves went at once.
    assert row.hangup_cause in (16, 0)
    assert row.outcome == "completed"
    assert await server.event_kinds(row.id) == [*GREETING_PATH, "closed"]
    lines = [entry for entry in server.log_lines() if entry.get("call_id") == row.id]
    assert {entry["event"] for entry in lines} >= {"call_started", "call_ended"}


async def test_fastagi_caller_hanging_up_mid_script_is_abandoned_and_server_serves_on(
    server: Server, callers: Callers
) -> None:
    call = await callers.place(context="infoline-agi", caller_id="<+38761555444>")
    await call.wait_for("StasisStart")

    async def greeting_started() -> bool:
        async with server.db.sessions() as session:
            call_id = await session.scalar(select(Call.id).where(Call.channel_id == call.far_end))
        return call_id is not None and "greeting_started" in await server.event_kinds(call_id)

    # The script logs greeting_started as it starts the greeting: hang up mid-greeting.
    await wait_until(greeting_started, message="the FastAGI greeting")
    await call.hangup()
    row = await server.wait_closed(call.far_end)
    assert row.outcome == "abandoned_in_ivr"
    # Normal clearing (16), as Asterisk reports it; on a loaded machine it has reported no
    # cause (0) for the far end of the test's Local channel when both halves went at once.
    assert row.hangup_cause in (16, 0)

    # The next FastAGI call is served normally.
    again = await callers.place(context="infoline-agi", caller_id="<+38761555444>")
    await again.wait_for("ChannelDestroyed")
    assert (await server.wait_closed(again.far_end)).outcome == "completed"
    _, status = await server.status()
    assert status["agi"]["active_sessions"] == 0


async def test_fastagi_client_sending_half_a_header_does_not_stop_real_calls(
    server: Server, callers: Callers
) -> None:
    _, status = await server.status()
    port = status["agi"]["port"]
    # A broken client: half a header block, then gone.
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"agi_network: yes\nagi_network_script: infoline\nagi_request: agi://")
    await writer.drain()
    writer.close()
    await writer.wait_closed()
    # A stalled one that keeps its socket open with nothing sent.
    _, stalled = await asyncio.open_connection("127.0.0.1", port)

    call = await callers.place(context="infoline-agi", caller_id="<+38761777666>")
    await call.wait_for("ChannelDestroyed")
    assert (await server.wait_closed(call.far_end)).outcome == "completed"
    stalled.close()
    _, status = await server.status()
    assert status["loop_lag_ms"] < 200
