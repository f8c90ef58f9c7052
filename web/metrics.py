"""``GET /metrics``: the operators' figures in Prometheus' text format, from what `serve` holds
in memory. A thin adapter over ``prometheus_client`` with a registry of its own (never the
library's global one, so a test or a second app in one process counts apart).

Two kinds of figures, and why:

- **Read at scrape time** (custom collectors, nothing to keep in step): callers waiting per
  queue and agents by state (the ACD), the agent dialler's lines in flight per campaign,
  ARI/AMI/AGI links up, the event loop's lag (the probe `serve` already runs for /status),
  the notices' outbox backlog (counted by the notices' loop each round).
- **Counted where the event happens** (told by the parts through plain listener lists, so
  they need not know Prometheus): calls ended by outcome (the call log's close), callers'
  waits per queue as a histogram and abandoned callers per queue (the info line's queue),
  and the seconds each database write of the call log takes.

Labels are bounded: queue, campaign, outcome, link — never a caller number or a call id.

Each queue's wait histogram has the fixed buckets plus one at the queue's service-level
threshold (``QueueDef.service_level_seconds``: answered in time) and one at its maximum wait,
so both "answered within the threshold" and "waited to the limit" read straight off it. A
queue's buckets are fixed at its first caller
in this process (a later edit of its maximum wait shows after the next start: changing a
series' buckets would break Prometheus' rates over it).

May import ``core`` and the libraries ``aiohttp`` and ``prometheus_client``; the parts it reads
come in as the small Protocols below (``centrala.service`` wires the real ones).
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from core.acd import AgentStatus

MetricsAccess = Literal["open", "token", "off"]

# Callers' waits in seconds; each queue adds buckets at its service level and maximum wait.
WAIT_BUCKETS: tuple[float, ...] = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600)
# One database write of the call log (a batch of many calls' events, or a close).
WRITE_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
LINKS = ("ari", "ami", "agi")
OUTBOX_CHANNELS = ("sms", "viber", "email", "letter")  # core.notices.Channel


class WaitingCall(Protocol):
    @property
    def queue(self) -> str: ...


class AgentLike(Protocol):
    @property
    def status(self) -> AgentStatus: ...


class ACDView(Protocol):
    """What is read of the ACD (``core.acd.ACD``)."""

    def waiting(self, queue: str | None = None) -> Sequence[WaitingCall]: ...
    def agents(self) -> Sequence[AgentLike]: ...


class DiallerFigures(Protocol):
    """The agent dialler's live figures (``AgentDialler.figures``): per running campaign its
    ``name``, ``lines`` (calls placed, not yet with an agent), ``agents``, ``available`` (of
    them, free) and ``lines_per_agent``."""

    def figures(self) -> list[dict[str, Any]]: ...


class QueueLeftLike(Protocol):
    """A caller's wait ended (``ari_app.infoline.notifier.QueueLeft``)."""

    @property
    def queue(self) -> str: ...
    @property
    def waited(self) -> float: ...
    @property
    def answered(self) -> bool: ...
    @property
    def threshold(self) -> float | None: ...
    @property
    def service_level(self) -> float | None: ...


@dataclass
class LiveSources:
    """The live parts of a running `serve`, read at each scrape."""

    acd: ACDView | None = None
    dialler: DiallerFigures | None = None
    links: Mapping[str, Callable[[], bool]] = field(default_factory=dict)
    loop_lag: Sequence[float] | None = None  # seconds, [0] kept current by the loop probe
    # The notices' outbox not yet handed over, by (channel, state): the notices' loop keeps
    # it current (a database count each round, not one per scrape).
    outbox: Mapping[tuple[str, str], int] | None = None
    # Several instances: this instance's node, and whether it owns it now.
    node: tuple[str, Callable[[], bool]] | None = None


class _WaitHistogram:
    """Callers' waits per queue and outcome (answered, abandoned), each queue with its own
    buckets (the fixed ones and its maximum wait): ``prometheus_client.Histogram`` gives
    every series one bucket set, so this keeps the counts itself."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self._lock = threading.Lock()
        self._bounds: dict[str, tuple[float, ...]] = {}
        # (queue, outcome) -> counts per bucket (non-cumulative, +Inf last) and the sum
        self._series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}

    def bounds(self, queue: str) -> tuple[float, ...]:
        return self._bounds.get(queue, WAIT_BUCKETS)

    def observe(
        self,
        queue: str,
        outcome: str,
        seconds: float,
        threshold: float | None,
        service_level: float | None = None,
    ) -> None:
        with self._lock:
            bounds = self._bounds.get(queue)
            if bounds is None:
                extra = {b for b in (threshold, service_level) if b is not None and b > 0}
                bounds = self._bounds[queue] = tuple(sorted(set(WAIT_BUCKETS) | extra))
            counts, total = self._series.setdefault(
                (queue, outcome), ([0] * (len(bounds) + 1), [0.0])
            )
            index = next((i for i, b in enumerate(bounds) if seconds <= b), len(bounds))
            counts[index] += 1
            total[0] += seconds

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=["queue", "outcome"])
        with self._lock:
            for (queue, outcome), (counts, total) in sorted(self._series.items()):
                bounds = self._bounds[queue]
                running, buckets = 0, []
                for bound, count in zip([*map(_le, bounds), "+Inf"], counts, strict=True):
                    running += count
                    buckets.append((bound, float(running)))
                family.add_metric([queue, outcome], buckets, total[0])
        return family


def _le(bound: float) -> str:
    return str(float(bound))


class _LiveCollector(Collector):
    def __init__(self, sources: Callable[[], LiveSources], waits: _WaitHistogram) -> None:
        self._sources = sources
        self._waits = waits

    def collect(self) -> Iterable[Metric]:
        src = self._sources()
        yield from _live_families(src)
        yield self._waits.collect()


def _live_families(src: LiveSources) -> Iterator[Metric]:
    waiting = GaugeMetricFamily(
        "centrala_queue_callers_waiting", "Callers waiting in each queue now", labels=["queue"]
    )
    agents = GaugeMetricFamily(
        "centrala_agents", "Agents in each state now (logged_out: known this run)", labels=["state"]
    )
    if src.acd is not None:
        per_queue: dict[str, int] = {}
        for call in src.acd.waiting():
            per_queue[call.queue] = per_queue.get(call.queue, 0) + 1
        for queue, n in sorted(per_queue.items()):
            waiting.add_metric([queue], n)
        by_state = dict.fromkeys(AgentStatus, 0)
        for agent in src.acd.agents():
            by_state[agent.status] += 1
        for state, n in by_state.items():
            agents.add_metric([state.value], n)
    yield waiting
    yield agents

    lines = GaugeMetricFamily(
        "centrala_dialler_lines_in_flight",
        "Agent campaigns' calls placed and not yet with an agent",
        labels=["campaign"],
    )
    dialler_agents = GaugeMetricFamily(
        "centrala_dialler_agents",
        "Agents working each running agent campaign (logged in, phone nailed up)",
        labels=["campaign"],
    )
    per_agent = GaugeMetricFamily(
        "centrala_dialler_lines_per_agent",
        "Lines in flight per agent working the campaign (as the wallboard shows it)",
        labels=["campaign"],
    )
    available = GaugeMetricFamily(
        "centrala_dialler_agents_available",
        "Agents working the campaign who were free for a call at the dialler's last tick",
        labels=["campaign"],
    )
    per_available = GaugeMetricFamily(
        "centrala_dialler_lines_per_available_agent",
        "Lines in flight per available agent (no sample while none is available)",
        labels=["campaign"],
    )
    if src.dialler is not None:
        for fig in src.dialler.figures():
            name = str(fig["name"])
            lines.add_metric([name], float(fig["lines"]))
            dialler_agents.add_metric([name], float(fig["agents"]))
            if fig.get("lines_per_agent") is not None:
                per_agent.add_metric([name], float(fig["lines_per_agent"]))
            free = int(fig.get("available") or 0)
            available.add_metric([name], float(free))
            if free:
                per_available.add_metric([name], float(fig["lines"]) / free)
    yield lines
    yield dialler_agents
    yield per_agent
    yield available
    yield per_available

    up = GaugeMetricFamily(
        "centrala_link_up",
        "1 when the link to Asterisk is up (ari, ami; agi: listening)",
        labels=["link"],
    )
    for link in LINKS:
        is_up = src.links.get(link)
        up.add_metric([link], 1.0 if is_up is not None and is_up() else 0.0)
    yield up

    if src.outbox is not None:
        outbox = GaugeMetricFamily(
            "centrala_outbox_messages",
            "Notices to clients not yet handed to their provider: queued (waiting for their "
            "time or their next attempt) or sending",
            labels=["channel", "state"],
        )
        for channel in OUTBOX_CHANNELS:
            for stage in ("queued", "sending"):
                outbox.add_metric([channel, stage], float(src.outbox.get((channel, stage), 0)))
        yield outbox

    if src.node is not None:
        owned = GaugeMetricFamily(
            "centrala_node_owned",
            "1 while this instance owns its Asterisk node (serves its calls), 0 standing by",
            labels=["node"],
        )
        name, owns = src.node
        owned.add_metric([name], 1.0 if owns() else 0.0)
        yield owned

    if src.loop_lag is not None:
        yield GaugeMetricFamily(
            "centrala_event_loop_lag_seconds",
            "How late the event loop last woke up (a blocked loop delays every call)",
            value=src.loop_lag[0],
        )


class CentralaMetrics:
    """The registry, the counters the parts tell, and the collectors of live state."""

    def __init__(self, sources: Callable[[], LiveSources] = LiveSources) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.calls_ended = Counter(
            "centrala_calls_ended",
            "Calls closed in the call log, by outcome (rows of the calls table)",
            ["outcome"],
            registry=self.registry,
        )
        self.abandoned = Counter(
            "centrala_queue_abandoned",
            "Callers who hung up while waiting in a queue",
            ["queue"],
            registry=self.registry,
        )
        self.db_write = Histogram(
            "centrala_db_write_seconds",
            "Seconds one database write of the call log took (a batch or a close)",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        self.waits = _WaitHistogram(
            "centrala_queue_wait_seconds",
            "Callers' waits in a queue until answered or abandoned; a bucket at the queue's "
            "maximum wait",
        )
        self.registry.register(_LiveCollector(sources, self.waits))

    # -- what the parts tell ---------------------------------------------------------------

    def call_closed(self, outcome: str, rows: int = 1) -> None:
        self.calls_ended.labels(outcome=outcome).inc(rows)

    def db_written(self, seconds: float) -> None:
        self.db_write.observe(seconds)

    def queue_left(self, left: QueueLeftLike) -> None:
        outcome = "answered" if left.answered else "abandoned"
        self.waits.observe(left.queue, outcome, left.waited, left.threshold, left.service_level)
        if not left.answered:
            self.abandoned.labels(queue=left.queue).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_route(
    metrics: Callable[[web.Application], CentralaMetrics],
    access: MetricsAccess,
    token: Callable[[], str],
) -> list[web.RouteDef]:
    """``GET /metrics``; ``access``: ``open`` (no credentials, as Prometheus expects on a
    private network), ``token`` (``Authorization: Bearer`` with the host's API token), or
    ``off`` (no route)."""
    if access == "off":
        return []

    async def scrape(request: web.Request) -> web.Response:
        if access == "token":
            given = request.headers.get("Authorization", "")
            expected = f"Bearer {token()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return web.Response(
                    status=401,
                    text="missing or wrong token\n",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        body = metrics(request.app).exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/metrics", scrape)]
