"""The shipped monitoring files, ``asterisk-docker/prometheus.yml`` and
``asterisk-docker/grafana-dashboard.json``, held against what is really exposed: every metric
the dashboard queries is one `serve` exposes (or one of Asterisk's own, which
tests/integration/test_metrics_prometheus.py sees scraped), and Prometheus scrapes both."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.acd import ACD, CallRequest
from web.metrics import CentralaMetrics, LiveSources

DOCKER = Path(__file__).resolve().parents[2] / "asterisk-docker"
# res_prometheus's names the dashboard may use (Asterisk 22's module; the integration test
# checks each one the dashboard uses is really scraped from the local Asterisk).
ASTERISK_METRICS = frozenset(
    {
        "asterisk_core_uptime_seconds",
        "asterisk_core_last_reload_seconds",
        "asterisk_channels_count",
        "asterisk_bridges_count",
        "asterisk_endpoints_count",
    }
)


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DOCKER / "grafana-dashboard.json").read_text())
    return data


def queried_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers left once label matchers,
    ranges, ``by (…)`` lists, strings and function calls are taken out."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(?:by|without)\s*\([^)]*\)", " ", bare)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        rest = bare[match.end() :].lstrip()
        if rest.startswith("("):
            continue  # a function
        names.add(match.group())
    return names


def dashboard_exprs() -> list[str]:
    return [t["expr"] for panel in dashboard()["panels"] for t in panel["targets"]]


@dataclass(frozen=True)
class Left:
    queue: str
    waited: float
    answered: bool
    threshold: float | None
    service_level: float | None = None


class Dialler:
    def figures(self) -> list[dict[str, Any]]:
        return [{"name": "c", "lines": 1, "agents": 1, "lines_per_agent": 1.0, "available": 1}]


def exposed_by_serve() -> set[str]:
    """Every sample name `serve`'s registry exposes with each part present and each event
    seen once."""
    acd = ACD()
    acd.request(CallRequest("c1", "q", arrived_at=0.0), now=0.0)  # nobody there: it waits
    metrics = CentralaMetrics(
        lambda: LiveSources(
            acd=acd, dialler=Dialler(), links={"ari": lambda: True}, loop_lag=[0.0], outbox={}
        )
    )
    metrics.call_closed("answered")
    metrics.db_written(0.01)
    metrics.queue_left(Left("q", 1.0, False, 30.0))
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def test_queried_metrics_are_read_out_of_promql() -> None:
    assert queried_metrics(
        'histogram_quantile(0.9, sum by (queue, le) (rate(a_bucket{outcome="x"}[5m]))) / b'
    ) == {"a_bucket", "b"}


def test_every_metric_the_dashboard_queries_is_exposed_by_serve_or_asterisk() -> None:
    exposed = exposed_by_serve()
    queried = {name for expr in dashboard_exprs() for name in queried_metrics(expr)}
    assert queried, "the dashboard queries nothing"
    unknown = sorted(n for n in queried if n not in exposed and n not in ASTERISK_METRICS)
    assert unknown == []
    # Both sources are on the dashboard: Centrala's and Asterisk's own.
    assert any(n.startswith("centrala_") for n in queried)
    assert any(n.startswith("asterisk_") for n in queried)


def test_every_metric_serve_exposes_is_on_the_dashboard() -> None:
    """A metric nobody looks at is a metric nobody notices broken."""
    queried = {name for expr in dashboard_exprs() for name in queried_metrics(expr)}
    families = {
        f.name
        for f in CentralaMetrics(
            lambda: LiveSources(acd=ACD(), loop_lag=[0.0], outbox={})
        ).registry.collect()
    }
    unseen = sorted(f for f in families if not any(q.startswith(f) for q in queried))
    assert unseen == []


def test_the_dashboard_is_grafana_json_with_a_prometheus_datasource() -> None:
    data = dashboard()
    assert data["title"] and data["uid"]
    variable = data["templating"]["list"][0]
    assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"] and all(t["refId"] and t["expr"] for t in panel["targets"])


def test_prometheus_scrapes_centrala_and_asterisk_at_their_metrics_paths() -> None:
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"centrala", "asterisk"}
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    web_port = compose["services"]["centrala"]["environment"].get("CENTRALA_WEB_PORT", "8080")
    assert jobs["centrala"]["metrics_path"] == "/metrics"
    assert jobs["centrala"]["static_configs"][0]["targets"] == [f"127.0.0.1:{web_port}"]
    # Asterisk's HTTP server is where ARI listens (CENTRALA_ARI_URL), prometheus.conf's uri.
    ari = compose["x-centrala-settings"]["CENTRALA_ARI_URL"]
    host_port = re.match(r"https?://([^/]+)/", ari)
    assert host_port is not None
    assert jobs["asterisk"]["static_configs"][0]["targets"] == [host_port.group(1)]
    conf = (DOCKER / "asterisk" / "prometheus.conf").read_text()
    assert re.search(r"^uri = metrics$", conf, re.M)
    assert jobs["asterisk"]["metrics_path"] == "/metrics"
    assert re.search(r"^enabled = yes$", conf, re.M)
    modules = (DOCKER / "asterisk" / "modules.conf").read_text()
    assert re.search(r"^load => res_prometheus\.so$", modules, re.M)
