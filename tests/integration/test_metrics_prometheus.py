"""A real Prometheus scrapes the test's `centrala serve` (GET /metrics) and the real Asterisk
(res_prometheus), while real calls go through the info line: what Prometheus stores is what
the database holds (calls by outcome equal the calls table's rows), the queue's live figures
and histograms move with the calls, and Asterisk's own metrics are there, each one the shipped
Grafana dashboard queries among them.

Prometheus is Debian's (``scripts/bootstrap --test`` installs it); without it the test fails.
It runs as a subprocess with a temporary configuration, scraping every second; the test waits
on its HTTP API (``/api/v1/query``), never for a fixed time."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
import yaml
from sqlalchemy import func, select

from centrala.pbx import ari_endpoint
from models.tables import Call
from tests.integration.conftest import PBX, Callers, Server
from tests.integration.test_infoline_paths import (  # noqa: F401
    Desk,
    call_and_press,
    desk,
    finish,
    wait_connected,
    wait_queued,
)
from tests.support import free_port, wait_until
from tests.unit.test_metrics_dashboard import dashboard_exprs, queried_metrics

Series = dict[tuple[tuple[str, str], ...], float]


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    async def query(self, promql: str) -> Series:
        """An instant query's vector, by each series' labels (``__name__`` left out)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited:\n{self.log_path.read_text()[-3000:]}")
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"{self.url}/api/v1/query",
                params={"query": promql},
                timeout=aiohttp.ClientTimeout(total=5),
            ) as resp,
        ):
            body = await resp.json()
        assert body["status"] == "success", body
        return {
            tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(
                r["value"][1]
            )
            for r in body["data"]["result"]
        }

    async def by(self, label: str, promql: str) -> dict[str, float]:
        return {dict(labels).get(label, ""): v for labels, v in (await self.query(promql)).items()}

    async def targets(self) -> dict[str, str]:
        """Each scrape job's health (``up``, ``down``, ``unknown``)."""
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.url}/api/v1/targets", timeout=aiohttp.ClientTimeout(total=5)) as resp,
        ):
            body = await resp.json()
        return {t["labels"]["job"]: t["health"] for t in body["data"]["activeTargets"]}


@pytest.fixture
async def prometheus(server: Server, pbx: PBX, tmp_path: Path) -> AsyncIterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is not installed: `scripts/bootstrap --test` installs it "
            "(apt-get install -y prometheus)"
        )
    serve = urlsplit(server.url)
    ari_host, ari_port = ari_endpoint(pbx.settings)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [
            {
                "job_name": "centrala",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [serve.netloc]}],
            },
            {
                "job_name": "asterisk",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{ari_host}:{ari_port}"]}],
            },
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log_path)
    try:

        async def both_up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
                return await prom.targets() == {"centrala": "up", "asterisk": "up"}
            return False

        await wait_until(both_up, timeout=30, interval=0.2, message="both targets scraped up")
        yield prom
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def rows_by_outcome(server: Server) -> dict[str, float]:
    async with server.db.sessions() as session:
        rows = await session.execute(
            select(Call.outcome, func.count())
            .where(Call.outcome.is_not(None))
            .group_by(Call.outcome)
        )
        return {str(outcome): float(n) for outcome, n in rows}


async def serves_own_counters(server: Server) -> dict[str, float]:
    """``centrala_calls_ended_total`` as `serve` answers it now (not through Prometheus)."""
    async with aiohttp.ClientSession() as http, http.get(server.url + "/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    out = {}
    for line in text.splitlines():
        if line.startswith('centrala_calls_ended_total{outcome="'):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = float(value)
    return out


def minus(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {
        k: after.get(k, 0.0) - before.get(k, 0.0) for k in after if after.get(k) != before.get(k)
    }


async def test_prometheus_scrapes_calls_by_outcome_equal_to_the_rows_and_asterisks_own_metrics(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
    prometheus: Prometheus,
) -> None:
    # Quiet first: no call of an earlier test still ending, Prometheus caught up with serve.
    async def quiet() -> bool:
        _, body = await server.status()
        return bool(body["calls_in_progress"] == 0)

    await wait_until(quiet, timeout=20, message="no call in progress")

    async def caught_up() -> tuple[dict[str, float]] | None:
        own = await serves_own_counters(server)
        seen = await prometheus.by("outcome", "centrala_calls_ended_total")
        return (seen,) if seen == own else None  # a tuple: no call yet is an empty dict

    (before,) = await wait_until(caught_up, timeout=20, message="Prometheus caught up")
    rows_before = await rows_by_outcome(server)
    waits_before = await prometheus.by(
        "outcome", 'centrala_queue_wait_seconds_count{queue="new_clients"}'
    )
    abandoned_before = sum(
        (
            await prometheus.by("queue", 'centrala_queue_abandoned_total{queue="new_clients"}')
        ).values()
    )

    # An answered call, a caller who gives up waiting behind it, one who hangs up in the IVR.
    await desk.agent("metrics", ["new_clients"])
    answered = await call_and_press(callers, "+38762812301", "0")
    await wait_connected(server, answered)
    waiting = await call_and_press(callers, "+38762812302", "0")
    await wait_queued(server, waiting)

    async def live_in_prometheus() -> bool:
        queue = await prometheus.by("queue", "centrala_queue_callers_waiting")
        agents = await prometheus.by("state", "centrala_agents")
        channels = await prometheus.query("asterisk_channels_count")
        return (
            queue.get("new_clients") == 1.0
            and agents.get("on_call", 0) >= 1
            and any(v >= 4 for v in channels.values())  # two callers' Local pairs at least
        )

    await wait_until(live_in_prometheus, timeout=20, message="the waiting caller scraped")
    await finish(server, waiting)
    ivr = await callers.place(caller_id='"Test" <+38762812303>')
    await ivr.wait_for("StasisStart")
    await finish(server, ivr)
    await finish(server, answered)
    await wait_until(quiet, timeout=20, message="the calls ended")

    # What Prometheus stored equals the rows: the calls added, and (when this serve has run
    # since its database was made) every row.
    async def counted_as_rows() -> tuple[dict[str, float], dict[str, float]] | None:
        rows = await rows_by_outcome(server)
        seen = await prometheus.by("outcome", "centrala_calls_ended_total")
        return (seen, rows) if minus(seen, before) == minus(rows, rows_before) else None

    async def settled() -> tuple[dict[str, float], dict[str, float]] | None:
        got = await counted_as_rows()
        return got if got is not None and sum(minus(got[1], rows_before).values()) >= 3 else None

    try:
        got = await wait_until(settled, timeout=30, message="the three calls counted")
    except AssertionError as exc:
        rows = await rows_by_outcome(server)
        seen = await prometheus.by("outcome", "centrala_calls_ended_total")
        raise AssertionError(
            f"{exc}: prometheus {seen} vs rows {rows} (before: {before}, {rows_before})"
        ) from None
    assert got is not None
    seen, rows = got
    assert minus(rows, rows_before) == {
        "answered": 1.0,
        "abandoned_in_queue": 1.0,
        "abandoned_in_ivr": 1.0,
    }
    started = [line for line in server.log_lines() if line.get("event") == "serving"]
    if len(started) == 1:  # one process counted every row this database has
        assert seen == rows

    waits = await prometheus.by("outcome", 'centrala_queue_wait_seconds_count{queue="new_clients"}')
    assert minus(waits, waits_before) == {"answered": 1.0, "abandoned": 1.0}
    abandoned = await prometheus.by("queue", 'centrala_queue_abandoned_total{queue="new_clients"}')
    assert sum(abandoned.values()) - abandoned_before == 1.0
    # new_clients' maximum wait (180 s in the shipped flow) is one of its buckets.
    buckets = await prometheus.by(
        "le", 'centrala_queue_wait_seconds_bucket{queue="new_clients",outcome="answered"}'
    )
    assert "180.0" in buckets and buckets["+Inf"] >= 1
    assert await prometheus.by("link", "centrala_link_up") == {"ari": 1, "ami": 1, "agi": 1}
    assert await prometheus.query("centrala_event_loop_lag_seconds")
    writes = await prometheus.query("centrala_db_write_seconds_count")
    assert writes and all(v > 0 for v in writes.values())

    # Asterisk's own, scraped from Asterisk: each of its metrics the dashboard draws.
    assert (await prometheus.query("asterisk_core_uptime_seconds")).popitem()[1] > 0
    for name in sorted(
        n for e in dashboard_exprs() for n in queried_metrics(e) if n.startswith("asterisk_")
    ):
        assert await prometheus.query(name), f"{name} not scraped from Asterisk"
