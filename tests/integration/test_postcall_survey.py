"""The post-call survey on the real Asterisk with a real `centrala serve`: a caller reaches an
agent, is sent to the survey (by the agent's transfer, or because they agreed in the menu and
the agent hung up), and answers with keys pressed on their leg and a spoken comment; the
answers land on that call's row, linked to its client and the survey version, and a detractor
gets a callback for their manager."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from sqlalchemy import select

from ari_app.ami import AMIClient, Message
from ari_app.ari import ARINotFound
from core.enums import ClientType
from models.flows import apply_flow
from models.tables import Call, Callback, SurveyAnswer
from models.tables import Survey as SurveyRow
from tests.integration.conftest import PBX, CallerLeg, Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    bridged_with,
    call_and_press,
    events,
    open_always,
    wait_connected,
    wait_event,
)
from tests.support import wait_until


class AGICommands:
    """The FastAGI commands Asterisk starts on each channel, from AMI's AGIExecStart. Asterisk
    drops a key that arrives between two AGI commands, and the next command starts within
    milliseconds: a key pressed once a STREAM FILE has started lands inside that prompt."""

    def __init__(self, ami: AMIClient) -> None:
        self.started: dict[str, list[str]] = {}  # channel uniqueid -> commands, in order
        self._waited: dict[str, int] = {}  # how many of them a test has waited past
        ami.on_event("AGIExecStart", self._on_start)

    def _on_start(self, msg: Message) -> None:
        self.started.setdefault(msg.get("Uniqueid", ""), []).append(msg.get("Command", ""))

    async def wait(self, call: CallerLeg, command: str, timeout: float = 30) -> None:
        """Until ``command`` (e.g. "STREAM FILE") starts on the call's far end, after the one
        waited for last."""
        channel = call.far_end

        def index() -> int | None:
            commands = self.started.get(channel, [])
            for i in range(self._waited.get(channel, 0), len(commands)):
                if commands[i].upper().startswith(command):
                    return i + 1
            return None

        self._waited[channel] = await wait_until(
            index, timeout=timeout, message=f"{command} on {channel}"
        )


@pytest.fixture
async def agi(pbx: PBX) -> AsyncIterator[AGICommands]:
    s = pbx.settings
    ami = AMIClient(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
    await ami.start()
    await ami.wait_connected(10)
    try:
        yield AGICommands(ami)
    finally:
        await ami.stop()


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    """The shipped flow (with its survey key), every queue open; agents logged out after."""
    await apply_flow(server.db.sessions, _flow(open_always))
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


async def wait_survey(server: Server, call_id: str, *statuses: str, timeout: float = 30) -> Call:
    """The call row once its survey_status is one of ``statuses``."""

    async def reached() -> Call | None:
        async with server.db.sessions() as session:
            row = await session.get(Call, call_id)
        return row if row is not None and row.survey_status in statuses else None

    return await wait_until(reached, timeout=timeout, message=f"survey status in {statuses}")


async def answers_of(server: Server, call_id: str) -> list[SurveyAnswer]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(SurveyAnswer).where(SurveyAnswer.call_id == call_id).order_by(SurveyAnswer.id)
        )
        return list(rows)


async def active_nps_id(server: Server) -> int:
    async with server.db.sessions() as session:
        survey_id = await session.scalar(
            select(SurveyRow.id).where(SurveyRow.name == "nps", SurveyRow.active)
        )
    assert survey_id is not None, "serve applies surveys/nps.yaml on a fresh install"
    return survey_id


async def keys(agi: AGICommands, call: CallerLeg, *digits: str) -> None:
    """Press each key inside the prompt that follows the previous one."""
    for digit in digits:
        await agi.wait(call, "STREAM FILE")
        await call.dtmf(digit)


async def say_something(call: CallerLeg) -> None:
    """Speak on the caller's leg (core sounds, 2.8 s), to the end."""
    playback = f"{call.id}-say"
    await call.ari.play(call.id, ["sound:hello-world", "sound:hello-world"], playback)

    async def ended() -> bool:
        try:
            await call.ari.request("GET", f"/playbacks/{playback}")
        except ARINotFound:  # a playback that ended is gone from ARI
            return True
        return False

    await wait_until(ended, timeout=10, message="the end of the caller's words")


async def test_agent_sends_a_detractor_to_the_survey_and_their_manager_gets_a_callback(
    server: Server, callers: Callers, desk: Desk, pbx: PBX, agi: AGICommands
) -> None:
    agent = await desk.agent("general", ["general"])
    manager = await desk.agent("manager", [], login=False)
    client_id = await desk.client(
        "Unhappy Client",
        "+38761000301",
        client_type=ClientType.REGULAR,
        assigned_manager_id=manager,
        language="en",
    )
    call = await call_and_press(callers, "+38761000301", "2")  # 2: my loan -> general
    row = await wait_connected(server, call)
    assert row.agent_id == agent

    await desk.api("POST", f"/api/calls/{row.id}/transfer", {"to": "survey"})
    await wait_survey(server, row.id, "in_progress")
    # Consent during the intro, 3 during the question, a key during "after the tone, tell
    # us" skips to the recording; then words, "#", and yes to a call back.
    await keys(agi, call, "1", "3", "#")
    await agi.wait(call, "RECORD FILE")
    # Talking over the beep (part of RECORD FILE, no event marks its end) like a hasty
    # caller: what follows the beep is recorded, still more than a second.
    await say_something(call)
    await call.dtmf("#")
    await keys(agi, call, "1")

    surveyed = await wait_survey(server, row.id, "completed")
    closed = await server.wait_closed(call.far_end, timeout=30)  # the survey hung up
    assert surveyed.survey_id == await active_nps_id(server)
    answers = await answers_of(server, row.id)
    comment = f"survey-{row.id}-why"
    assert [(a.question_key, a.value_int, a.recording) for a in answers] == [
        ("recommend", 3, None),
        ("why", None, comment),
        ("may_call_back", 1, None),
    ]
    assert {(a.survey_id, a.client_id) for a in answers} == {(surveyed.survey_id, client_id)}
    recording = pbx.settings.pbx_root / "rootfs/var/spool/asterisk/recording" / f"{comment}.wav"
    assert recording.stat().st_size > 8000  # a second and more of 8 kHz 16-bit audio
    async with server.db.sessions() as session:
        callback = await session.scalar(select(Callback).where(Callback.call_id == row.id))
    assert callback is not None
    assert (callback.assigned_agent_id, callback.reason, callback.number) == (
        manager,
        "nps_detractor",
        "+38761000301",
    )
    await wait_event(server, row.id, "sent_to_survey")
    assert await events(server, row.id, "sent_to_survey") == [
        {"survey": "nps", "via": "transfer", "from_agent": agent}
    ]
    # One row for the whole call: answered by the agent, the survey after the talk.
    assert (closed.outcome, closed.agent_id) == ("answered", agent)
    assert closed.talk_seconds is not None and closed.talk_seconds < 10
    assert (await desk.api("GET", "/api/acd"))["agents"][agent]["status"] == "available"


async def test_caller_who_agreed_in_the_menu_is_surveyed_when_the_agent_hangs_up(
    server: Server, callers: Callers, desk: Desk, agi: AGICommands
) -> None:
    newdesk = await desk.agent("newdesk", ["new_clients"])
    # 6: a survey after the call (the confirmation plays), 0 during it: an operator.
    call = await call_and_press(callers, "+38761999302", "60")
    row = await wait_connected(server, call)
    assert row.agent_id == newdesk
    await wait_event(server, row.id, "survey_agreed")

    names = await bridged_with(callers, call)
    agent_leg = next(
        c["id"]
        for c in await callers.ari.channels()
        if c["name"] in names and c["id"] != call.far_end
    )
    await callers.ari.hangup(agent_leg)  # the agent ends the call first
    await wait_survey(server, row.id, "in_progress")
    await keys(agi, call, "1", "9", "2")  # consent, 9, no call back

    surveyed = await wait_survey(server, row.id, "completed")
    closed = await server.wait_closed(call.far_end, timeout=30)
    answers = await answers_of(server, row.id)
    assert [(a.question_key, a.value_int) for a in answers] == [
        ("recommend", 9),
        ("may_call_back", 0),
    ]
    assert {(a.survey_id, a.client_id) for a in answers} == {(surveyed.survey_id, None)}
    assert (await events(server, row.id, "survey_agreed")) == [{"survey": "nps"}]
    assert (await events(server, row.id, "sent_to_survey"))[0]["via"] == "agreed"
    assert "agent_hung_up" in await server.event_kinds(row.id)
    assert closed.outcome == "answered"
    async with server.db.sessions() as session:
        assert await session.scalar(select(Callback).where(Callback.call_id == row.id)) is None


async def test_caller_hanging_up_mid_survey_keeps_the_answers_given(
    server: Server, callers: Callers, desk: Desk, agi: AGICommands
) -> None:
    await desk.agent("general", ["general"])
    await desk.client("Busy Client", "+38761000303", client_type=ClientType.REGULAR)
    call = await call_and_press(callers, "+38761000303", "2")
    row = await wait_connected(server, call)

    await desk.api("POST", f"/api/calls/{row.id}/transfer", {"to": "survey:nps"})
    await wait_survey(server, row.id, "in_progress")
    await keys(agi, call, "1", "9")
    await agi.wait(call, "STREAM FILE")
    await call.hangup()  # during "may we call you back?"

    await wait_survey(server, row.id, "partial")
    assert [(a.question_key, a.value_int) for a in await answers_of(server, row.id)] == [
        ("recommend", 9)
    ]
    assert (await server.wait_closed(call.far_end)).outcome == "answered"


async def test_survey_transfer_is_blind_only(server: Server, callers: Callers, desk: Desk) -> None:
    await desk.agent("general", ["general"])
    await desk.client("Client", "+38761000304", client_type=ClientType.REGULAR)
    call = await call_and_press(callers, "+38761000304", "2")
    row = await wait_connected(server, call)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{server.url}/api/calls/{row.id}/transfer",
            json={"to": "survey", "mode": "attended"},
            headers=desk.headers,
        ) as resp,
    ):
        assert (resp.status, (await resp.json())["error_id"]) == (422, "bad_target")
    await call.hangup()
    await server.wait_closed(call.far_end)
