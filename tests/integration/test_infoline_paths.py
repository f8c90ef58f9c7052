"""The free info line, path by path, on the real Asterisk: a test caller (Local channel driven
through ARI, pressing keys) and test agents (Local channels into context test-agent, which
answer and stay on) logged in through Centrala's API. Asserts who was connected and what was
written."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import select

from ari_app.ari import ARINotFound
from core.enums import AgentRole, ClientType
from dialplan.model import Flow
from models.flows import apply_flow
from models.tables import Agent, Call, Callback, CallEvent, Client, ClientPhone, Queue, QueueMember
from tests.integration.conftest import CallerLeg, Callers, Server
from tests.support import wait_until

FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"


def _flow(edit: Callable[[dict[str, Any]], None]) -> Flow:
    data = yaml.safe_load(FLOW_FILE.read_text())
    edit(data)
    return Flow.model_validate(data)


def open_always(data: dict[str, Any]) -> None:
    """Tests must not depend on the time of day: every queue open, short waits."""
    for queue in data["queues"].values():
        queue["calendar"] = "always"
        queue["wrap_up_seconds"] = 0
        queue["ring_timeout_seconds"] = 5


class Desk:
    """Agents and clients for one test, logged in through the real API; all logged out and
    their queue memberships removed at the end, so tests do not leak into each other."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.tag = uuid.uuid4().hex[:6]
        self.logged_in: list[str] = []
        self.agents: list[str] = []
        token = (Path(server.data_dir) / "api-token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    def id(self, name: str) -> str:
        return f"{name}-{self.tag}"

    async def agent(
        self,
        name: str,
        queues: list[str],
        *,
        context: str = "test-agent",
        role: AgentRole = AgentRole.AGENT,
        login: bool = True,
    ) -> str:
        agent_id = self.id(name)
        async with self.server.db.sessions() as session:
            for q in queues:
                if await session.get(Queue, q) is None:
                    session.add(Queue(id=q, name=q, settings={}))
            session.add(
                Agent(
                    id=agent_id,
                    name=name,
                    role=role,
                    endpoint=f"Local/{agent_id}@{context}",
                    skills=[],
                    memberships=[QueueMember(queue_id=q) for q in queues],
                )
            )
            await session.commit()
        self.agents.append(agent_id)
        if login:
            await self.api("POST", f"/api/agents/{agent_id}/login", {})
            self.logged_in.append(agent_id)
        return agent_id

    async def client(self, name: str, number: str, **fields: Any) -> int:
        async with self.server.db.sessions() as session:
            client = Client(
                external_id=self.id(name), name=name, phones=[ClientPhone(number=number)], **fields
            )
            session.add(client)
            await session.commit()
            return client.id

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.server.url + path, json=body, headers=self.headers) as resp,
        ):
            data = await resp.json()
            assert resp.status == 200, data
            return data

    async def close(self) -> None:
        for agent_id in self.logged_in:

            async def logged_out(agent_id: str = agent_id) -> bool:
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(
                        f"{self.server.url}/api/agents/{agent_id}/logout", headers=self.headers
                    ) as resp,
                ):
                    return resp.status == 200  # 409 while still on a call that is ending

            with contextlib.suppress(AssertionError):  # clean-up: the test's failure counts
                await wait_until(logged_out, timeout=10, interval=0.1, message="logout")
        async with self.server.db.sessions() as session:
            for agent_id in self.agents:
                for m in await session.scalars(
                    select(QueueMember).where(QueueMember.agent_id == agent_id)
                ):
                    await session.delete(m)
            await session.commit()


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    await apply_flow(server.db.sessions, _flow(open_always))
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


async def events(server: Server, call_id: str, kind: str) -> list[dict[str, Any]]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(CallEvent.data)
            .where(CallEvent.call_id == call_id, CallEvent.kind == kind)
            .order_by(CallEvent.id)
        )
        return list(rows)


async def call_row(server: Server, call: CallerLeg) -> Call | None:
    async with server.db.sessions() as session:
        return await session.scalar(select(Call).where(Call.channel_id == call.far_end))


async def wait_connected(server: Server, call: CallerLeg, timeout: float = 20) -> Call:
    """The call row once an agent is connected to the caller."""

    async def connected() -> Call | None:
        row = await call_row(server, call)
        if row is not None and row.connected_at is None and row.ended_at is not None:
            raise AssertionError(f"call ended without an agent: {row.outcome}")
        return row if row is not None and row.connected_at is not None else None

    return await wait_until(connected, timeout=timeout, message="an agent connected")


async def wait_queued(server: Server, call: CallerLeg, timeout: float = 20) -> Call:
    """The call row once the caller waits in a queue (the "queued" event is written)."""

    async def queued() -> Call | None:
        row = await call_row(server, call)
        return row if row is not None and await events(server, row.id, "queued") else None

    return await wait_until(queued, timeout=timeout, message="the caller queued")


async def bridged_with(callers: Callers, call: CallerLeg) -> list[str]:
    """Names of the channels in the bridge that holds the caller (from Asterisk itself)."""
    for bridge in await callers.ari.bridges():
        if call.far_end in bridge["channels"]:
            names = []
            for channel_id in bridge["channels"]:
                with contextlib.suppress(ARINotFound):  # hung up since the bridge was read
                    names.append((await callers.ari.get_channel(channel_id))["name"])
            return names
    return []


async def call_and_press(callers: Callers, number: str, keys: str) -> CallerLeg:
    call = await callers.place(caller_id=f'"Test" <{number}>')
    await call.wait_for("StasisStart")
    if keys:
        await call.dtmf(keys)
    return call


async def finish(server: Server, call: CallerLeg) -> Call:
    await call.hangup()
    return await server.wait_closed(call.far_end)


async def test_key_client_reaches_own_manager_when_free(
    server: Server, callers: Callers, desk: Desk
) -> None:
    manager = await desk.agent("manager", ["key_accounts"])
    await desk.agent("other-manager", ["key_accounts"])
    await desk.agent("head", ["head_of_sales"])
    client_id = await desk.client(
        "Key Client",
        "+38761000101",
        client_type=ClientType.KEY,
        assigned_manager_id=manager,
        language="bs",
    )
    call = await call_and_press(callers, "061 000 101", "2")  # 2: my loan

    row = await wait_connected(server, call)
    assert (row.client_id, row.agent_id, row.queue) == (client_id, manager, "key_accounts")
    assert any(f"Local/{manager}@test-agent" in n for n in await bridged_with(callers, call))
    routed = await events(server, row.id, "routed")
    assert routed[0]["rule"].startswith("key clients")
    assert (await events(server, row.id, "offered"))[0]["tier"] == 0

    row = await finish(server, call)
    assert row.outcome == "answered"
    assert row.talk_seconds is not None and row.talk_seconds >= 0
    assert row.wait_seconds is not None and row.wait_seconds < 5
    assert row.ivr_path[-2:] == ["main_menu:2", "my_loan"]


async def test_key_client_goes_to_another_key_account_manager_when_own_is_paused(
    server: Server, callers: Callers, desk: Desk
) -> None:
    manager = await desk.agent("manager", ["key_accounts"])
    other = await desk.agent("other-manager", ["key_accounts"])
    await desk.agent("head", ["head_of_sales"])
    await desk.api("POST", f"/api/agents/{manager}/pause", {"reason": "meeting"})
    await desk.client(
        "Key Client", "+38761000102", client_type=ClientType.KEY, assigned_manager_id=manager
    )
    call = await call_and_press(callers, "+38761000102", "2")

    row = await wait_connected(server, call)
    assert row.agent_id == other
    assert (await events(server, row.id, "offered"))[0]["tier"] == 1
    assert (await finish(server, call)).outcome == "answered"


async def test_key_client_goes_to_head_of_sales_when_no_key_account_manager_is_free(
    server: Server, callers: Callers, desk: Desk
) -> None:
    manager = await desk.agent("manager", ["key_accounts"], login=False)
    head = await desk.agent("head", ["head_of_sales"])
    await desk.client(
        "Key Client", "+38761000103", client_type=ClientType.KEY, assigned_manager_id=manager
    )
    call = await call_and_press(callers, "+38761000103", "2")

    row = await wait_connected(server, call)
    assert row.agent_id == head
    assert (await events(server, row.id, "offered"))[0]["tier"] == 2
    await finish(server, call)


async def test_client_with_overdue_debt_goes_to_finance(
    server: Server, callers: Callers, desk: Desk
) -> None:
    finance = await desk.agent("finance", ["finance"])
    await desk.agent("general", ["general"])
    await desk.client("Debtor", "+38761000104", client_type=ClientType.REGULAR, overdue_debt=True)
    call = await call_and_press(callers, "+38761000104", "2")

    row = await wait_connected(server, call)
    assert (row.agent_id, row.queue) == (finance, "finance")
    await finish(server, call)


async def test_complaint_is_escalated_to_the_supervisor(
    server: Server, callers: Callers, desk: Desk
) -> None:
    supervisor = await desk.agent("supervisor", ["supervisor"], role=AgentRole.SUPERVISOR)
    await desk.agent("general", ["general"])
    await desk.client("Unhappy", "+38761000105", client_type=ClientType.REGULAR)
    call = await call_and_press(callers, "+38761000105", "3")  # 3: complaint

    row = await wait_connected(server, call)
    assert (row.agent_id, row.queue) == (supervisor, "supervisor")
    assert row.ivr_path[-1] == "complaint"
    await finish(server, call)


async def test_unknown_caller_reaches_the_new_client_desk(
    server: Server, callers: Callers, desk: Desk
) -> None:
    new_desk = await desk.agent("newdesk", ["new_clients"])
    call = await call_and_press(callers, "+38761999106", "0")  # 0: an operator

    row = await wait_connected(server, call)
    assert (row.client_id, row.agent_id, row.queue) == (None, new_desk, "new_clients")
    await finish(server, call)


async def test_after_hours_caller_confirms_callback_and_a_task_is_created(
    server: Server, callers: Callers, desk: Desk
) -> None:
    def closed_today(data: dict[str, Any]) -> None:
        open_always(data)
        today = datetime.now(UTC).date()
        data["calendars"]["office"]["holidays"] = [today]
        data["queues"]["general"]["calendar"] = "office"
        data["queues"]["new_clients"]["calendar"] = "office"

    await apply_flow(server.db.sessions, _flow(closed_today))
    await desk.agent("general", ["general"])  # logged in, but the queue is closed
    call = await call_and_press(callers, "+38761999107", "0")
    # After the "we are closed" message, confirm the callback offer with 1 as it plays.
    await call.prompt_started("callback_offer")
    await call.dtmf("1")

    row = await server.wait_closed(call.far_end, timeout=60)  # goodbye, then we hang up
    assert row.outcome == "after_hours"
    assert row.agent_id is None
    async with server.db.sessions() as session:
        callback = await session.scalar(select(Callback).where(Callback.call_id == row.id))
    assert callback is not None
    assert (callback.number, callback.reason, callback.status) == (
        "+38761999107",
        "after_hours",
        "open",
    )
    assert callback.due_at > datetime.now(UTC)  # the next opening hour, not today


async def test_queue_timeout_overflows_to_the_next_queue(
    server: Server, callers: Callers, desk: Desk
) -> None:
    def short_wait(data: dict[str, Any]) -> None:
        open_always(data)
        data["queues"]["new_clients"]["max_wait_seconds"] = 5
        data["queues"]["new_clients"]["overflow"] = {"queue": "general"}

    await apply_flow(server.db.sessions, _flow(short_wait))
    general = await desk.agent("general", ["general"])  # nobody at the new-client desk
    call = await call_and_press(callers, "+38761999108", "0")

    row = await wait_connected(server, call, timeout=30)
    assert (row.agent_id, row.queue) == (general, "general")
    overflow = await events(server, row.id, "overflowed")
    assert overflow == [{"queue": "new_clients", "to": "general"}]
    assert row.wait_seconds is not None and row.wait_seconds >= 5
    await finish(server, call)


async def test_caller_hanging_up_in_the_queue_is_logged_as_abandoned(
    server: Server, callers: Callers, desk: Desk
) -> None:
    call = await call_and_press(callers, "+38761999109", "0")  # nobody logged in
    await wait_queued(server, call)
    row = await finish(server, call)
    assert row.outcome == "abandoned_in_queue"
    assert row.queue == "new_clients"
    assert row.agent_id is None and row.connected_at is None


async def test_agent_that_does_not_answer_is_paused_and_the_next_one_gets_the_call(
    server: Server, callers: Callers, desk: Desk
) -> None:
    sleepy = await desk.agent("sleepy", ["new_clients"], context="test-agent-noanswer")
    awake = await desk.agent("awake", ["new_clients"])
    # sleepy logged in first (each login is done when its API call returns), so has been
    # idle longest and is offered first; rings 5 s, then awake.
    call = await call_and_press(callers, "+38761999110", "0")

    row = await wait_connected(server, call, timeout=30)
    assert row.agent_id == awake
    assert [e["agent_id"] for e in await events(server, row.id, "agent_no_answer")] == [sleepy]
    snapshot = await desk.api("GET", "/api/acd")
    assert snapshot["agents"][sleepy]["status"] == "paused"
    await finish(server, call)


async def test_nailed_up_agent_gets_the_caller_bridged_in_at_once(
    server: Server, callers: Callers, desk: Desk
) -> None:
    agent = await desk.agent("nailed", ["new_clients"], login=False)
    await desk.api("POST", f"/api/agents/{agent}/login", {"mode": "nailed"})
    desk.logged_in.append(agent)
    await wait_status(desk, agent, "available", message="the nailed leg up")
    own_bridge = [b for b in await callers.ari.bridges() if len(b["channels"]) == 1]
    assert len(own_bridge) == 1  # the agent waits alone in their bridge

    call = await call_and_press(callers, "+38761999111", "0")
    row = await wait_connected(server, call)
    assert row.agent_id == agent
    names = await bridged_with(callers, call)
    assert any(f"Local/{agent}@test-agent" in n for n in names) and len(names) == 2
    await finish(server, call)  # the row is closed: the app is done with the call

    # The agent's leg stays up in their bridge for the next caller.
    async def agent_alone_in_bridge() -> bool:
        return [len(b["channels"]) for b in await callers.ari.bridges()] == [1]

    await wait_until(agent_alone_in_bridge, timeout=5, message="the agent alone in the bridge")
    await wait_status(desk, agent, "available", message="the nailed agent free again")


async def test_caller_pressing_star_in_the_queue_gets_a_callback_instead(
    server: Server, callers: Callers, desk: Desk
) -> None:
    call = await call_and_press(callers, "+38761999112", "0")  # nobody logged in: waits
    await wait_queued(server, call)
    await call.dtmf("*")
    await call.prompt_started("callback_offer")
    await call.dtmf("1")  # confirm: call me back on this number

    row = await server.wait_closed(call.far_end, timeout=60)
    assert row.outcome == "callback_requested"
    async with server.db.sessions() as session:
        callback = await session.scalar(select(Callback).where(Callback.call_id == row.id))
    assert callback is not None
    assert (callback.number, callback.reason) == ("+38761999112", "callback_requested")
    assert await events(server, row.id, "left_queue_for_callback") == [{}]


async def test_waiting_caller_hears_position_announcements(
    server: Server, callers: Callers, desk: Desk
) -> None:
    def announce_often(data: dict[str, Any]) -> None:
        open_always(data)
        data["queues"]["new_clients"]["announce_every_seconds"] = 2

    await apply_flow(server.db.sessions, _flow(announce_often))
    call = await call_and_press(callers, "+38761999113", "9")  # 9: English, then menu...
    await call.prompt_started("welcome")  # ... in English from the welcome on
    await call.dtmf("0")
    row = await wait_queued(server, call)

    async def two_announcements() -> bool:
        return len(await events(server, row.id, "announced")) >= 2

    await wait_until(two_announcements, timeout=30, message="two announcements")
    assert (await events(server, row.id, "announced"))[0] == {"position": 1}
    assert (await finish(server, call)).outcome == "abandoned_in_queue"


async def _connected_to(server: Server, callers: Callers, desk: Desk, number: str) -> Call:
    call = await call_and_press(callers, number, "0")
    row = await wait_connected(server, call)
    row.__dict__["_leg"] = call
    return row


async def wait_event(server: Server, call_id: str, kind: str, timeout: float = 20) -> None:
    async def written() -> list[dict[str, Any]]:
        return await events(server, call_id, kind)

    await wait_until(written, timeout=timeout, message=f"a {kind} event")


async def wait_status(desk: Desk, agent_id: str, status: str, *, message: str) -> None:
    """Until the ACD shows ``agent_id`` in ``status``."""

    async def reached() -> bool:
        agents = (await desk.api("GET", "/api/acd"))["agents"]
        return bool(agents.get(agent_id, {}).get("status") == status)

    await wait_until(reached, timeout=10, message=message)


async def test_blind_transfer_to_the_supervisor_moves_the_caller_and_frees_the_agent(
    server: Server, callers: Callers, desk: Desk
) -> None:
    first = await desk.agent("first", ["new_clients"])
    supervisor = await desk.agent("super", ["supervisor"], role=AgentRole.SUPERVISOR)
    row = await _connected_to(server, callers, desk, "+38761999114")
    call: CallerLeg = row.__dict__["_leg"]
    assert row.agent_id == first

    await desk.api("POST", f"/api/calls/{row.id}/transfer", {"to": "supervisor"})
    await wait_event(server, row.id, "agent_connected")

    async def with_supervisor() -> bool:
        async with server.db.sessions() as session:
            moved = await session.get(Call, row.id)
        return moved is not None and moved.agent_id == supervisor

    await wait_until(with_supervisor, timeout=20, message="the supervisor on the call")
    names = await bridged_with(callers, call)
    assert any(f"Local/{supervisor}@" in n for n in names) and len(names) == 2
    await wait_event(server, row.id, "transferred")
    assert (await events(server, row.id, "transferred")) == [
        {"mode": "blind", "from_agent": first, "to": "supervisor"}
    ]
    assert (await desk.api("GET", "/api/acd"))["agents"][first]["status"] == "available"
    closed = await finish(server, call)
    assert (closed.outcome, closed.queue) == ("answered", "supervisor")


async def test_attended_transfer_lets_the_agents_talk_then_hands_the_caller_over(
    server: Server, callers: Callers, desk: Desk
) -> None:
    first = await desk.agent("first", ["new_clients"])
    second = await desk.agent("second", ["finance"])
    row = await _connected_to(server, callers, desk, "+38761999115")
    call: CallerLeg = row.__dict__["_leg"]

    await desk.api(
        "POST", f"/api/calls/{row.id}/transfer", {"to": f"agent:{second}", "mode": "attended"}
    )
    await wait_event(server, row.id, "consult_connected")
    # The two agents talk; the caller holds, in no bridge.
    assert await bridged_with(callers, call) == []
    agents_bridge = [b for b in await callers.ari.bridges() if len(b["channels"]) == 2]
    assert len(agents_bridge) == 1

    await desk.api("POST", f"/api/calls/{row.id}/transfer/complete")
    names = await bridged_with(callers, call)
    assert any(f"Local/{second}@" in n for n in names) and len(names) == 2
    assert not any(f"Local/{first}@" in n for n in names)
    async with server.db.sessions() as session:
        assert (await session.get(Call, row.id)).agent_id == second  # type: ignore[union-attr]
    await wait_event(server, row.id, "transferred")  # the trail is written behind
    assert (await events(server, row.id, "transferred"))[0]["mode"] == "attended"
    assert (await finish(server, call)).outcome == "answered"


async def test_cancelled_attended_transfer_returns_the_caller_to_the_first_agent(
    server: Server, callers: Callers, desk: Desk
) -> None:
    first = await desk.agent("first", ["new_clients"])
    second = await desk.agent("second", ["finance"])
    row = await _connected_to(server, callers, desk, "+38761999116")
    call: CallerLeg = row.__dict__["_leg"]

    await desk.api(
        "POST", f"/api/calls/{row.id}/transfer", {"to": f"agent:{second}", "mode": "attended"}
    )
    await wait_event(server, row.id, "consult_connected")
    await desk.api("POST", f"/api/calls/{row.id}/transfer/cancel")
    names = await bridged_with(callers, call)
    assert any(f"Local/{first}@" in n for n in names) and len(names) == 2
    await wait_status(desk, second, "available", message="the consulted agent freed")
    assert (await finish(server, call)).outcome == "answered"


async def test_transfer_controls_refuse_clearly(
    server: Server, callers: Callers, desk: Desk
) -> None:
    async with aiohttp.ClientSession() as http:

        async def post(path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            async with http.post(server.url + path, json=body, headers=desk.headers) as resp:
                return resp.status, await resp.json()

        code, body = await post("/api/calls/nope/transfer", {"to": "supervisor"})
        assert (code, body["error_id"]) == (404, "unknown_call")
        code, body = await post("/api/calls/nope/transfer", {"to": "agent:x\\nAction: x"})
        assert (code, body["error_id"]) == (422, "bad_target")
        async with http.post(
            server.url + "/api/calls/nope/transfer", json={"to": "supervisor"}
        ) as r:
            assert r.status == 401  # no token


async def test_apply_mid_call_leaves_the_call_on_its_version_and_the_next_call_on_the_new(
    server: Server, callers: Callers, desk: Desk
) -> None:
    await desk.agent("newdesk", ["new_clients"])
    first = await callers.place(caller_id="<+38761999117>")
    await first.wait_for("StasisStart")
    async with server.db.sessions() as session:
        old_version = await session.scalar(
            select(Call.flow_version).where(Call.channel_id == first.far_end)
        )
    assert old_version is not None

    def zero_is_information(data: dict[str, Any]) -> None:
        open_always(data)
        data["nodes"]["main_menu"]["options"]["0"] = "information"

    new_version = await apply_flow(server.db.sessions, _flow(zero_is_information))
    assert new_version == old_version + 1

    await first.dtmf("0")  # on its own version 0 is still "an operator"
    row = await wait_connected(server, first)
    assert row.flow_version == old_version
    await finish(server, first)

    second = await call_and_press(callers, "+38761999118", "0")  # new version: information
    await second.prompt_started("information_products")
    row = await finish(server, second)
    assert row.flow_version == new_version
    at = row.ivr_path.index("main_menu:0")
    assert row.ivr_path[at + 1] == "information"  # self-service, no agent
    assert row.agent_id is None and row.queue is None


async def test_hold_puts_the_caller_on_music_and_resume_brings_them_back(
    server: Server, callers: Callers, desk: Desk
) -> None:
    agent = await desk.agent("holder", ["new_clients"])
    row = await _connected_to(server, callers, desk, "+38761999119")
    call: CallerLeg = row.__dict__["_leg"]

    await desk.api("POST", f"/api/calls/{row.id}/hold")
    assert await bridged_with(callers, call) == []  # out of the bridge, hearing music
    await desk.api("POST", f"/api/calls/{row.id}/hold")  # twice: nothing more happens
    await desk.api("POST", f"/api/calls/{row.id}/resume")
    names = await bridged_with(callers, call)
    assert any(f"Local/{agent}@" in n for n in names) and len(names) == 2
    await wait_event(server, row.id, "resumed")
    assert [k for k in ("held", "resumed") if await events(server, row.id, k)] == [
        "held",
        "resumed",
    ]
    assert len(await events(server, row.id, "held")) == 1
    assert (await finish(server, call)).outcome == "answered"
