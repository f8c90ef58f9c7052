"""The roster edited over the API, followed by the running ACD on real calls through the real
Asterisk: an agent a supervisor takes out of a queue is not offered its next caller; a
deactivated agent is logged out of the ACD at once."""

from __future__ import annotations

from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    call_and_press,
    desk,  # noqa: F401  (a fixture)
    finish,
    wait_connected,
)


async def test_an_agent_taken_out_of_a_queue_is_not_offered_its_next_caller(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
) -> None:
    first = await desk.agent("first", ["new_clients"])
    second = await desk.agent("second", ["new_clients"])
    await desk.api("PATCH", f"/api/admin/agents/{second}", {"queues": {"new_clients": 5}})

    call = await call_and_press(callers, "+38762810301", "0")
    row = await wait_connected(server, call)
    assert row.agent_id == first  # the lower penalty is offered first
    await finish(server, call)

    edited = await desk.api("PATCH", f"/api/admin/agents/{first}", {"queues": {}})
    assert edited["queues"] == {}
    call = await call_and_press(callers, "+38762810302", "0")
    row = await wait_connected(server, call)
    assert row.agent_id == second
    await finish(server, call)

    await desk.api("PATCH", f"/api/admin/agents/{second}", {"active": False})
    acd = await desk.api("GET", "/api/acd")
    assert acd["agents"][second]["status"] == "logged_out"
    assert acd["agents"][first]["status"] != "logged_out"
    desk.logged_in.remove(second)  # nothing left to log out at the end
