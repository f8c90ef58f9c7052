"""``web/metrics.py`` on fakes and on the info line's real parts over a fake ARI: what a scrape
shows of live state (the ACD, the dialler's figures, the links), the counters told where the
event happens (calls closed, queue waits, database writes), and who may read ``/metrics``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from core.acd import ACD, AgentMode, AgentProfile, CallRequest
from models.tables import Call
from tests.unit.test_infoline_app import Line, line, no_leftovers, template_db  # noqa: F401
from web.metrics import WAIT_BUCKETS, CentralaMetrics, LiveSources, metrics_route

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: CentralaMetrics) -> Samples:
    """Every sample of the exposition, parsed back by the client's own parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def named(samples: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


@dataclass(frozen=True)
class Left:
    queue: str
    waited: float
    answered: bool
    threshold: float | None
    service_level: float | None = None


class Dialler:
    def __init__(self, figures: list[dict[str, Any]]) -> None:
        self._figures = figures

    def figures(self) -> list[dict[str, Any]]:
        return self._figures


def acd_with_two_waiting_and_three_agents() -> ACD:
    acd = ACD()
    for agent_id in ("ana", "bo", "cy"):
        profile = AgentProfile(agent_id, agent_id, queues={"sales": 0})
        acd.login(profile, f"PJSIP/{agent_id}", AgentMode.PER_CALL, now=0.0)
    acd.pause("cy", "lunch", now=1.0)
    # ana and bo each get a call; two more wait in sales, one in support.
    for n, queue in enumerate(["sales", "sales", "sales", "sales", "support"]):
        acd.request(CallRequest(f"c{n}", queue, arrived_at=2.0), now=2.0)
    acd.answered("c0", "ana", now=3.0)
    return acd


def test_a_scrape_reads_waiting_callers_and_agents_states_from_the_acd_as_they_are_now() -> None:
    acd = acd_with_two_waiting_and_three_agents()
    metrics = CentralaMetrics(lambda: LiveSources(acd=acd))

    samples = scrape(metrics)

    assert named(samples, "centrala_queue_callers_waiting") == {
        (("queue", "sales"),): 2.0,
        (("queue", "support"),): 1.0,
    }
    assert named(samples, "centrala_agents") == {
        (("state", "logged_out"),): 0.0,
        (("state", "available"),): 0.0,
        (("state", "offered"),): 1.0,
        (("state", "on_call"),): 1.0,
        (("state", "wrap_up"),): 0.0,
        (("state", "paused"),): 1.0,
    }
    # Nothing to drift: the next scrape reads the ACD again.
    acd.cancel("c2", now=4.0)
    assert value(scrape(metrics), "centrala_queue_callers_waiting", queue="sales") == 1.0


def test_links_dialler_lines_and_loop_lag_are_read_at_the_scrape() -> None:
    up = {"ari": True, "ami": False}
    lag = [0.25]
    dialler = Dialler(
        [
            {"name": "renewals", "lines": 3, "agents": 2, "lines_per_agent": 1.5, "available": 2},
            {"name": "quiet", "lines": 1, "agents": 1, "lines_per_agent": 1.0, "available": 0},
        ]
    )
    metrics = CentralaMetrics(
        lambda: LiveSources(
            dialler=dialler,
            links={"ari": lambda: up["ari"], "ami": lambda: up["ami"]},
            loop_lag=lag,
        )
    )

    samples = scrape(metrics)
    assert named(samples, "centrala_link_up") == {
        (("link", "ari"),): 1.0,
        (("link", "ami"),): 0.0,
        (("link", "agi"),): 0.0,  # not started: down, not absent
    }
    assert value(samples, "centrala_dialler_lines_in_flight", campaign="renewals") == 3.0
    assert value(samples, "centrala_dialler_agents", campaign="renewals") == 2.0
    assert value(samples, "centrala_dialler_lines_per_agent", campaign="renewals") == 1.5
    assert value(samples, "centrala_dialler_agents_available", campaign="renewals") == 2.0
    assert value(samples, "centrala_dialler_lines_per_available_agent", campaign="renewals") == 1.5
    # Nobody free: no ratio (not a division by zero), the lines and agents still there.
    assert value(samples, "centrala_dialler_lines_per_available_agent", campaign="quiet") is None
    assert value(samples, "centrala_dialler_agents_available", campaign="quiet") == 0.0
    assert value(samples, "centrala_event_loop_lag_seconds") == 0.25

    up["ari"], lag[0] = False, 0.0
    samples = scrape(metrics)
    assert value(samples, "centrala_link_up", link="ari") == 0.0
    assert value(samples, "centrala_event_loop_lag_seconds") == 0.0


def test_the_outbox_backlog_is_every_channel_queued_and_sending() -> None:
    backlog = {("sms", "queued"): 12, ("email", "sending"): 2}
    samples = scrape(CentralaMetrics(lambda: LiveSources(outbox=backlog)))
    assert value(samples, "centrala_outbox_messages", channel="sms", state="queued") == 12.0
    assert value(samples, "centrala_outbox_messages", channel="email", state="sending") == 2.0
    assert value(samples, "centrala_outbox_messages", channel="viber", state="queued") == 0.0
    assert len(named(samples, "centrala_outbox_messages")) == 8  # 4 channels, 2 states
    # A serve whose notices loop has not started: no outbox figures, not zeros.
    assert named(scrape(CentralaMetrics(LiveSources)), "centrala_outbox_messages") == {}


def test_the_node_owned_is_read_at_the_scrape_and_absent_with_one_instance() -> None:
    owned = [False]
    metrics = CentralaMetrics(lambda: LiveSources(node=("pbx2", lambda: owned[0])))
    assert value(scrape(metrics), "centrala_node_owned", node="pbx2") == 0.0  # standing by
    owned[0] = True  # taken over
    assert value(scrape(metrics), "centrala_node_owned", node="pbx2") == 1.0
    assert named(scrape(CentralaMetrics(LiveSources)), "centrala_node_owned") == {}


def test_a_serve_not_started_yet_still_answers_a_scrape() -> None:
    samples = scrape(CentralaMetrics())
    assert named(samples, "centrala_queue_callers_waiting") == {}
    assert value(samples, "centrala_link_up", link="ari") == 0.0


def test_each_queues_wait_histogram_has_a_bucket_at_its_maximum_wait() -> None:
    metrics = CentralaMetrics()
    metrics.queue_left(Left("sales", 41.0, True, 42.0))
    metrics.queue_left(Left("sales", 43.0, True, 42.0))
    metrics.queue_left(Left("sales", 7.0, False, 42.0))
    metrics.queue_left(Left("support", 2.0, True, None))
    metrics.queue_left(Left("finance", 24.0, True, 300.0, 25.0))

    samples = scrape(metrics)
    answered = {"queue": "sales", "outcome": "answered"}
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="42.0", **answered) == 1.0
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="45.0", **answered) == 2.0
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="+Inf", **answered) == 2.0
    assert value(samples, "centrala_queue_wait_seconds_count", **answered) == 2.0
    assert value(samples, "centrala_queue_wait_seconds_sum", **answered) == 84.0
    abandoned = {"queue": "sales", "outcome": "abandoned"}
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="10.0", **abandoned) == 1.0
    assert value(samples, "centrala_queue_abandoned_total", queue="sales") == 1.0
    assert value(samples, "centrala_queue_abandoned_total", queue="support") is None
    # A queue without a known maximum wait has the fixed buckets only.
    support = named(samples, "centrala_queue_wait_seconds_bucket")
    les = sorted(dict(labels)["le"] for labels in support if dict(labels)["queue"] == "support")
    assert len(les) == len(WAIT_BUCKETS) + 1 and "42.0" not in les
    # The service level's threshold is a bucket too: "answered in time" reads off it.
    finance = {"queue": "finance", "outcome": "answered"}
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="25.0", **finance) == 1.0
    assert value(samples, "centrala_queue_wait_seconds_bucket", le="20.0", **finance) == 0.0


def test_calls_closed_and_database_writes_are_counted_as_told() -> None:
    metrics = CentralaMetrics()
    metrics.call_closed("answered")
    metrics.call_closed("answered")
    metrics.call_closed("unserved", 3)
    metrics.db_written(0.003)

    samples = scrape(metrics)
    assert value(samples, "centrala_calls_ended_total", outcome="answered") == 2.0
    assert value(samples, "centrala_calls_ended_total", outcome="unserved") == 3.0
    assert value(samples, "centrala_db_write_seconds_count") == 1.0
    assert value(samples, "centrala_db_write_seconds_bucket", le="0.005") == 1.0
    assert value(samples, "centrala_db_write_seconds_bucket", le="0.0025") == 0.0


def test_two_registries_count_apart() -> None:
    first, second = CentralaMetrics(), CentralaMetrics()
    first.call_closed("answered")
    assert value(scrape(second), "centrala_calls_ended_total", outcome="answered") is None


async def test_the_info_lines_calls_counted_by_outcome_equal_the_rows_and_waits_are_observed(
    line: Line,  # noqa: F811
) -> None:
    metrics = CentralaMetrics(lambda: LiveSources(acd=line.app.acd))
    line.calllog.on_closed.append(metrics.call_closed)
    line.calllog.on_written.append(metrics.db_written)
    line.app.queue_listeners.append(metrics.queue_left)
    endpoint = await line.login("ana", ["new_clients"])

    await line.call("caller-1", keys="0")  # answered by ana
    line.ari.pick_up(line.agent_leg(endpoint))
    await line.settle()
    await line.call("caller-2", keys="0")  # ana is busy: waits, then hangs up
    assert value(scrape(metrics), "centrala_queue_callers_waiting", queue="new_clients") == 1.0
    line.ari.hang_up("caller-2")
    await line.settle()
    await line.call("caller-3")  # hangs up in the IVR
    line.ari.hang_up("caller-3")
    line.ari.hang_up("caller-1")
    await line.settle()
    no_leftovers(line.ari)

    async with line.db.sessions() as session:
        rows = dict(
            (outcome, float(n))
            for outcome, n in await session.execute(
                select(Call.outcome, func.count()).group_by(Call.outcome)
            )
        )
    samples = scrape(metrics)
    counted = {
        dict(labels)["outcome"]: v
        for labels, v in named(samples, "centrala_calls_ended_total").items()
    }
    assert counted == rows
    assert set(rows) == {"answered", "abandoned_in_queue", "abandoned_in_ivr"}
    queue = {"queue": "new_clients"}
    assert value(samples, "centrala_queue_wait_seconds_count", outcome="answered", **queue) == 1
    assert value(samples, "centrala_queue_wait_seconds_count", outcome="abandoned", **queue) == 1
    assert value(samples, "centrala_queue_abandoned_total", **queue) == 1.0
    assert value(samples, "centrala_queue_callers_waiting", **queue) is None
    assert (value(samples, "centrala_db_write_seconds_count") or 0) > 0


async def test_a_failing_metrics_listener_never_loses_a_calls_write(
    line: Line,  # noqa: F811
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("metrics broke")

    line.calllog.on_closed.append(broken)
    line.calllog.on_written.append(broken)
    line.app.queue_listeners.append(broken)
    await line.call("caller-7", keys="0")  # nobody logged in: queued
    line.ari.hang_up("caller-7")
    await line.settle()
    assert (await line.row("caller-7")).outcome == "abandoned_in_queue"
    no_leftovers(line.ari)


# ---- who may read /metrics -----------------------------------------------------------------

KEY = web.AppKey("metrics", CentralaMetrics)


async def client_for(access: str, token: str = "host-token") -> TestClient[Any, Any]:
    app = web.Application()
    app[KEY] = CentralaMetrics()
    app[KEY].call_closed("answered")
    get: Callable[[web.Application], CentralaMetrics] = lambda a: a[KEY]  # noqa: E731
    app.router.add_routes(metrics_route(get, access, lambda: token))  # type: ignore[arg-type]
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_metrics_open_answer_without_credentials_in_prometheus_text_format() -> None:
    client = await client_for("open")
    try:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        assert 'centrala_calls_ended_total{outcome="answered"} 1.0' in await response.text()
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("header", "status"),
    [(None, 401), ("Bearer wrong", 401), ("host-token", 401), ("Bearer host-token", 200)],
)
async def test_metrics_behind_the_token_need_the_hosts_api_token(
    header: str | None, status: int
) -> None:
    client = await client_for("token")
    try:
        headers = {} if header is None else {"Authorization": header}
        response = await client.get("/metrics", headers=headers)
        assert response.status == status
    finally:
        await client.close()


async def test_metrics_off_has_no_route() -> None:
    client = await client_for("off")
    try:
        assert (await client.get("/metrics")).status == 404
    finally:
        await client.close()
