"""How long a flow's diagram takes to draw (``GET .../flows/{name}/diagram.svg`` without the
database or HTTP): the DOT text (``dialplan.diagram.to_dot``), Graphviz's ``dot -Tsvg`` as
the server runs it (``web.flow_diagram.run_dot``: a process per drawing), and the SVG rebuilt
from the allowlist (``clean_svg``), for the shipped flow and for a generated valid flow of
about ``--nodes`` nodes. No Asterisk, database or network. The server keeps recent drawings,
so these are the cost of a first view; a version viewed again costs a hash of its DOT text.

    .venv/bin/python bench/flow_diagram.py [--nodes 200] [--repeat 20]

The generated flow: menus in a chain (key 9 leads on), each with five keys to a prompt, then
a branch on the caller (known or not) to one of two routes; every menu's 0 and timeout go to
the operator. Eleven nodes per menu, two routes shared.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dialplan.diagram import clean_svg, to_dot  # noqa: E402
from dialplan.model import Flow  # noqa: E402
from dialplan.validate import load_flow, validate  # noqa: E402
from web.flow_diagram import run_dot  # noqa: E402


def generated_flow(nodes: int) -> Flow:
    """A valid flow of about ``nodes`` nodes (see the module's docstring)."""
    menus = max(1, (nodes - 2) // 11)
    graph: dict[str, Any] = {
        "known_route": {"type": "route", "intent": "known"},
        "operator": {"type": "route", "intent": "operator"},
    }
    for m in range(menus):
        options = {"0": "operator"}
        for k in range(1, 6):
            graph[f"m{m}_info{k}"] = {"type": "play", "prompt": "info", "next": f"m{m}_who{k}"}
            graph[f"m{m}_who{k}"] = {
                "type": "branch",
                "cases": [{"when": {"known": True}, "next": "known_route"}],
                "default": "operator",
            }
            options[str(k)] = f"m{m}_info{k}"
        if m + 1 < menus:
            options["9"] = f"m{m + 1}"
        graph[f"m{m}"] = {
            "type": "menu",
            "prompt": "menu",
            "options": options,
            "on_fail": "operator",
        }
    text = {"bs": "Pritisnite jedan, dva ili tri.", "en": "Press one, two or three."}
    flow = Flow.model_validate(
        {
            "name": "generated",
            "default_language": "bs",
            "languages": ["bs", "en"],
            "start": "m0",
            "nodes": graph,
            "prompts": {name: {"text": text} for name in ("info", "menu", "queue_hold")},
            "queues": {"general": {"name": "General"}},
            "routes": [{"name": "everyone", "queue": "general"}],
        }
    )
    problems = validate(flow)
    assert not problems, problems
    return flow


def edges(dot: str) -> int:
    return sum(" -> " in line for line in dot.splitlines())


async def measure(name: str, flow: Flow, repeat: int) -> None:
    to_dot_ms, dot_ms, clean_ms, total_ms = [], [], [], []
    dot = svg = ""
    for _ in range(repeat):
        t0 = time.perf_counter()
        dot = to_dot(flow)
        t1 = time.perf_counter()
        raw = await run_dot(dot, max_seconds=60)
        t2 = time.perf_counter()
        svg = clean_svg(raw)
        t3 = time.perf_counter()
        to_dot_ms.append((t1 - t0) * 1000)
        dot_ms.append((t2 - t1) * 1000)
        clean_ms.append((t3 - t2) * 1000)
        total_ms.append((t3 - t0) * 1000)
    print(
        f"{name:<10} {len(flow.nodes):>5} {edges(dot):>5} {len(dot) / 1000:>7.1f} "
        f"{len(svg) / 1000:>7.1f} {statistics.median(to_dot_ms):>7.1f} "
        f"{statistics.median(dot_ms):>7.1f} {max(dot_ms):>7.1f} "
        f"{statistics.median(clean_ms):>7.1f} {statistics.median(total_ms):>9.1f} "
        f"{max(total_ms):>9.1f}"
    )


async def run(nodes: int, repeat: int) -> None:
    shipped = ROOT / "dialplan" / "infoline.yaml"
    flows = [
        ("infoline", load_flow(shipped.read_text(), str(shipped))),
        ("generated", generated_flow(nodes)),
    ]
    print(f"{repeat} drawings each; times in ms (p50 unless max)")
    print(
        f"{'flow':<10} {'nodes':>5} {'edges':>5} {'DOT kB':>7} {'SVG kB':>7} {'to_dot':>7} "
        f"{'dot':>7} {'dot max':>7} {'clean':>7} {'total p50':>9} {'total max':>9}"
    )
    for name, flow in flows:
        await measure(name, flow, repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=200, help="the generated flow's size")
    parser.add_argument("--repeat", type=int, default=20, help="drawings of each flow")
    args = parser.parse_args()
    asyncio.run(run(args.nodes, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
