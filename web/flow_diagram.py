"""A call flow's diagram as SVG: ``dialplan.diagram`` writes the DOT text and cleans the SVG,
this module runs Graphviz's ``dot`` on it (no shell, input bounded, a timeout, at most
``MAX_RUNNING`` at once per event loop, recent drawings kept) and answers
``GET .../flows/{name}/diagram.svg`` (``web.flow_api``).

May import ``dialplan``, ``core`` and ``usecases`` (see ``web``)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import structlog

from core.errors import DomainError
from dialplan.diagram import clean_svg, to_dot
from dialplan.model import Flow

log = structlog.get_logger(__name__)

DOT = "dot"  # Debian's graphviz (scripts/bootstrap, the image) puts it on PATH
TIMEOUT = 20.0  # seconds; a 500-node flow draws in 1-4 s on a busy 2-core machine (README)
MAX_DOT_BYTES = 2_000_000  # a flow within dialplan.model's limits writes far less
MAX_SVG_BYTES = 16_000_000
MAX_RUNNING = 2  # dot processes at once: the machine's cores, not every asker's
CACHE_SIZE = 32  # drawings kept, by their DOT text: a version viewed again costs nothing

_cache: OrderedDict[str, str] = OrderedDict()
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


class DiagramError(DomainError):
    """The diagram could not be drawn (``dot`` missing, too slow or failing): 503."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_id="diagram_unavailable", status=503)


def _gate() -> asyncio.Semaphore:
    # A semaphore belongs to one event loop: one per loop (tests run several).
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(MAX_RUNNING)
    return gate


async def run_dot(dot_text: str, *, max_seconds: float = TIMEOUT, program: str = DOT) -> str:
    """``dot -Tsvg`` on the text, its SVG as dot wrote it; DiagramError when it cannot."""
    data = dot_text.encode()
    if len(data) > MAX_DOT_BYTES:
        raise DiagramError(f"the flow is too large to draw ({len(data):,} bytes of DOT)")
    async with _gate():
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                "-Tsvg",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.error("diagram_dot_missing", program=program, error=str(exc))
            raise DiagramError("Graphviz (dot) is not installed on the server") from None
        try:
            async with asyncio.timeout(max_seconds):
                out, err = await proc.communicate(data)
        except TimeoutError:
            raise DiagramError(f"drawing took longer than {max_seconds:g} s") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
    if proc.returncode != 0 or len(out) > MAX_SVG_BYTES:
        log.error(
            "diagram_dot_failed",
            status=proc.returncode,
            stderr=err[:2000].decode("utf-8", "replace"),
        )
        raise DiagramError("Graphviz (dot) could not draw the flow")
    return out.decode("utf-8", "replace")


async def render(
    flow: Flow,
    *,
    problems: Mapping[str, Sequence[str]] | None = None,
    counts: Mapping[str, int] | None = None,
    path: Sequence[str] = (),
    max_seconds: float = TIMEOUT,
) -> str:
    """The flow's diagram as clean SVG (see ``dialplan.diagram.to_dot`` for the options)."""
    dot_text = to_dot(flow, problems=problems, counts=counts, path=path)
    key = hashlib.sha256(dot_text.encode()).hexdigest()
    if (svg := _cache.get(key)) is not None:
        _cache.move_to_end(key)
        return svg
    raw = await run_dot(dot_text, max_seconds=max_seconds)
    try:
        svg = clean_svg(raw)
    except ValueError as exc:
        log.error("diagram_svg_unreadable", error=str(exc))
        raise DiagramError("Graphviz (dot) wrote no readable SVG") from None
    _cache[key] = svg
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return svg
